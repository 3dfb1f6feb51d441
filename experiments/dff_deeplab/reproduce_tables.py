"""The paper's table in one command: DeepLab-101, DFF and Accel-18/34/50/101 at several
keyframe intervals, mIoU and time per frame, as Markdown, JSON and two plots.

    python experiments/dff_deeplab/reproduce_tables.py --dataset cityscapes \
        --data-root data/cityscapes --intervals 1 2 3 4 5 -e 0
    python experiments/dff_deeplab/reproduce_tables.py --model 18=output/x/accel-18 \
        --versions dff 18 --intervals 1 2 3 --epoch 10        # own checkpoints

Models: `--model VERSION=PREFIX` (repeatable), else the official files under ./model/
(the rows of accel.symbols.versions: accel-<v>-0000.params; DFF = the Accel-18 file's
warped branch). DeepLab-101 (frame by frame) is the keyframe network at interval 1, from the
`--reference` version's checkpoint. Every missing file is listed before anything runs.

Writes to --output (default output/tables): tables.md, tables.json, miou_vs_interval.png,
miou_vs_time.png (and .svg). Time = mean network time per frame over all frames (forward + argmax +
copy to host, batch 1, warm-up excluded), as the README's "time/image".
"""
from typing import Any, Dict, Optional, Sequence

from accel.cli import run


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run every (version, interval); writes tables.md, tables.json and the plots."""
    # Imported here, after run() has imported MXNET_VERSION's mxnet (unless --runtime torch).
    from accel.cli.tables import tables

    return tables(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    run(main)
