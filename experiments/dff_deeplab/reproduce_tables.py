"""The paper's table in one command: DeepLab-101, DFF and Accel-18/34/50/101 at several
keyframe intervals, mIoU and time per frame, as Markdown, JSON and two plots.

    python experiments/dff_deeplab/reproduce_tables.py --dataset cityscapes \
        --data-root data/cityscapes --intervals 1 2 3 4 5 -e 0
    python experiments/dff_deeplab/reproduce_tables.py --model 18=output/x/accel-18 \
        --versions dff 18 --intervals 1 2 3 --epoch 10        # own checkpoints

Models: `--model VERSION=PREFIX` (repeatable), else the official files under ./model/
(dff_deeplab.demo.OFFICIAL: accel-<v>-0000.params; DFF = the Accel-18 file's warped
branch). DeepLab-101 (frame by frame) is the keyframe network at interval 1, from the
`--reference` version's checkpoint. Every missing file is listed before anything runs.

Writes to --output (default output/tables): tables.md, tables.json, miou_vs_interval.png,
miou_vs_time.png. Time = mean network time per frame over all frames (forward + argmax +
copy to host, batch 1, warm-up excluded), as the README's "time/image".
"""
import argparse
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from accel.core.inference import VideoSegmenter
from accel.core.tester import (add_data_arguments, add_speed_arguments, demo_context,
                               demo_data, evaluate_snippets, load_model, open_dataset,
                               repo_path, run_cli, select_snippets, speed_options,
                               write_results, write_text)
from accel.utils.checkpoint import list_checkpoints, params_path
from accel.utils.visualize import line_plot, save_image
from dff_deeplab.demo import METHOD_NAMES, OFFICIAL, OFFICIAL_SOURCE, REFERENCE_NAME
from dff_deeplab.symbol import VERSIONS, AccelNetwork

logger = logging.getLogger("reproduce_tables")

# The README's rows, in its order: (row name, version, sub-networks). None = DeepLab-101.
README_ROWS = [
    ("Deep Feature Flow", "dff", "DeepLab, ResNet-v1-101, FlowNet"),
    ("Accel-18", "18", "DeepLab, ResNet-v1-18, FlowNet"),
    ("Accel-34", "34", "DeepLab, ResNet-v1-34, FlowNet"),
    ("Accel-50", "50", "DeepLab, ResNet-v1-50, FlowNet"),
    ("Frame-by-frame baseline", None, "DeepLab, ResNet-v1-101"),
    ("Accel-101", "101", "DeepLab, ResNet-v1-101, FlowNet"),
]
# Published numbers (Cityscapes val, interval 5, Tesla K80), for the side-by-side column.
PAPER = {"dff": (68.7, 0.25), "18": (72.1, 0.44), "34": (72.4, 0.53), "50": (74.2, 0.67),
         None: (75.2, 0.74), "101": (75.5, 0.87)}


def build_parser() -> argparse.ArgumentParser:
    """The script's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", choices=list(VERSIONS),
                        default=["dff", "18", "34", "50", "101"], help="networks to run")
    parser.add_argument("--intervals", nargs="+", type=int, default=[1, 2, 3, 4, 5],
                        help="keyframe intervals (1 = DeepLab-101 frame by frame)")
    parser.add_argument("--main-interval", type=int, default=None,
                        help="interval of the README-style table (default 5 if run, else "
                             "the largest)")
    parser.add_argument("--model", action="append", default=[], metavar="VERSION=PREFIX",
                        help="checkpoint prefix of a version (repeatable)")
    parser.add_argument("--epoch", type=int, default=0, help="epoch of every checkpoint")
    parser.add_argument("--reference", choices=list(VERSIONS), default=None,
                        help="whose keyframe network gives the DeepLab-101 row (default: the "
                             "first version run)")
    parser.add_argument("--output", default="output/tables", help="output folder")
    add_data_arguments(parser)
    add_speed_arguments(parser)
    return parser


def model_prefixes(args: argparse.Namespace, versions: Sequence[str]) -> Dict[str, str]:
    """{version: checkpoint prefix}; raise listing every missing file at once."""
    given = {}
    for item in args.model:
        version, sep, prefix = item.partition("=")
        if not sep or version not in VERSIONS or not prefix:
            raise ValueError(f"--model {item!r}: expected VERSION=PREFIX with VERSION one of "
                             f"{list(VERSIONS)}")
        given[version] = prefix
    prefixes = {v: given.get(v) or repo_path(OFFICIAL[v]) for v in versions}
    missing = [params_path(p, args.epoch) for v, p in prefixes.items()
               if args.epoch not in list_checkpoints(p)]
    if missing:
        raise FileNotFoundError("model file(s) not found: " + ", ".join(sorted(set(missing)))
                                + ". They come from --model VERSION=PREFIX or from "
                                + OFFICIAL_SOURCE)
    return prefixes


def run_all(args: argparse.Namespace) -> Dict[str, Any]:
    """Evaluate every (version, interval); returns {'runs': [...], 'settings': {...}}."""
    if any(i < 1 for i in args.intervals):
        raise ValueError(f"--intervals must all be >= 1, got {args.intervals}")
    versions = list(dict.fromkeys(args.versions))
    reference = args.reference or versions[0]
    need = list(dict.fromkeys(versions + ([reference] if 1 in args.intervals else [])))
    prefixes = model_prefixes(args, need)
    data = demo_data(args)
    dataset = open_dataset(data)
    ctx = demo_context(args)
    speed = speed_options(args, data, ctx)
    num_ex = 0 if args.num_ex is None else args.num_ex
    runs: List[Dict[str, Any]] = []
    started = time.perf_counter()
    for version in need:
        arg_params, aux_params = load_model(prefixes[version], args.epoch,
                                            "--model or " + OFFICIAL_SOURCE)
        network = AccelNetwork(version, data.num_classes)
        intervals = [i for i in args.intervals if i > 1] if version in versions else []
        if version == reference and 1 in args.intervals:
            intervals = [1] + intervals
        for interval in intervals:
            method = REFERENCE_NAME if interval == 1 else METHOD_NAMES[version]
            seg = VideoSegmenter(network, arg_params, aux_params, interval, ctx=ctx,
                                 source=params_path(prefixes[version], args.epoch), **speed)
            snippets = select_snippets(dataset.test_snippets(interval, avg=args.avg), num_ex)
            res = evaluate_snippets(dataset, snippets, seg.step, seg.reset,
                                    f"{method} i={interval}", interval,
                                    threaded=not args.serial)
            runs.append({"method": method, "version": None if interval == 1 else version,
                         "interval": interval, "model": params_path(prefixes[version],
                                                                   args.epoch),
                         "mIoU": res["mIoU"], "pixel_acc": res["pixel_acc"],
                         "frames": res["frames"], "path": "fast" if seg.fast else "reference",
                         "time_per_frame": res["timing"]["network"]["all"]["mean"],
                         "by_distance": {d: r["mIoU"] for d, r in res["by_distance"].items()},
                         "IoU": res["IoU"], "timing": res["timing"]})
        del arg_params, aux_params
    settings = {"dataset": data.name, "split": data.split, "root": data.root,
                "scales": data.scales, "stride": data.stride, "device": str(ctx),
                "protocol": "average over offsets" if args.avg else "worst case",
                "num_ex": num_ex, "reference": reference, "epoch": args.epoch,
                "int8": args.int8,
                "total_seconds": time.perf_counter() - started}
    return {"settings": settings, "runs": runs}


def _find(runs: List[Dict[str, Any]], version: Optional[str], interval: int):
    for r in runs:
        if r["version"] == version and r["interval"] == (1 if version is None else interval):
            return r
    return None


def _num(value: Optional[float], pct: bool = True, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{100 * value:.{digits}f}" if pct else f"{value:.3f}"


def markdown(results: Dict[str, Any], main_interval: int) -> str:
    """README-style table at `main_interval`, then mIoU and time by interval and distance."""
    s, runs = results["settings"], results["runs"]
    intervals = sorted({r["interval"] for r in runs})
    lines = [f"Testing data: {s['dataset']} {s['split']} ({s['protocol']}, "
             f"{s['num_ex'] or 'all'} labelled frames), frames {s['scales']}, "
             f"device {s['device']}, keyframe interval {main_interval}.", "",
             "| Method | Sub-networks | mIoU (%) | time/frame (s) | paper mIoU "
             "| paper time (K80) |",
             "|---|---|---:|---:|---:|---:|"]
    for name, version, subnets in README_ROWS:
        run = _find(runs, version, main_interval)
        if run is None:
            continue
        paper = PAPER[version]
        lines.append(f"| {name} | {subnets} | {_num(run['mIoU'])} | "
                     f"{_num(run['time_per_frame'], pct=False)} | {paper[0]} | {paper[1]} |")
    lines += ["", "mIoU (%) / time per frame (s) by keyframe interval "
              "(interval 1 is DeepLab-101 for every version):", "",
              "| Method | " + " | ".join(f"i={i}" for i in intervals) + " |",
              "|---|" + "---:|" * len(intervals)]
    reference = _find(runs, None, 1)
    for name, version, _ in README_ROWS:
        if version is None or not any(r["version"] == version for r in runs):
            continue
        cells = []
        for i in intervals:
            run = reference if i == 1 else _find(runs, version, i)
            cells.append("-" if run is None else
                         f"{_num(run['mIoU'])} / {_num(run['time_per_frame'], pct=False)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    distances = sorted({int(d) for r in runs for d in r["by_distance"]})
    lines += ["", f"mIoU (%) by distance from the keyframe, interval {main_interval}:", "",
              "| Method | " + " | ".join(f"d={d}" for d in distances) + " |",
              "|---|" + "---:|" * len(distances)]
    for name, version, _ in README_ROWS:
        run = _find(runs, version, main_interval)
        if run is not None:
            by = {int(d): v for d, v in run["by_distance"].items()}
            lines.append(f"| {name} | " + " | ".join(_num(by.get(d)) for d in distances) + " |")
    lines += ["", f"Total run time {s['total_seconds']:.0f} s."]
    return "\n".join(lines)


def plots(results: Dict[str, Any], out_dir: str) -> List[str]:
    """mIoU against interval and against time per frame, one line per method."""
    runs = results["runs"]
    reference = _find(runs, None, 1)
    by_interval, by_time = {}, {}
    for name, version, _ in README_ROWS:
        series = [r for r in runs if version is not None and r["version"] == version]
        if not series:
            continue
        series = sorted(series + ([reference] if reference is not None else []),
                        key=lambda r: r["interval"])
        by_interval[name] = ([r["interval"] for r in series], [100 * r["mIoU"] for r in series])
        by_time[name] = ([r["time_per_frame"] for r in series],
                         [100 * r["mIoU"] for r in series])
    if reference is not None:
        by_time[REFERENCE_NAME] = ([reference["time_per_frame"]], [100 * reference["mIoU"]])
    paths = []
    for name, series, x_label in (("miou_vs_interval", by_interval, "keyframe interval"),
                                  ("miou_vs_time", by_time, "time per frame (s)")):
        try:
            image = line_plot(series, x_label, "mIoU (%)", "mIoU against " + x_label)
        except ValueError as err:  # e.g. runs too short to leave frames after warm-up
            logger.warning("%s.png not drawn: %s", name, err)
            continue
        paths.append(save_image(os.path.join(out_dir, name + ".png"), image))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run everything and write tables.md, tables.json and the plots."""
    args = build_parser().parse_args(argv)
    results = run_all(args)
    intervals = sorted({r["interval"] for r in results["runs"]})
    main_interval = args.main_interval or (5 if 5 in intervals else max(intervals))
    os.makedirs(args.output, exist_ok=True)
    text = markdown(results, main_interval)
    write_text(os.path.join(args.output, "tables.md"), text)
    write_results(os.path.join(args.output, "tables.json"), results)
    results["plots"] = plots(results, args.output)
    logger.info("tables in %s\n%s", args.output, text)
    return results


if __name__ == "__main__":
    run_cli(main)
