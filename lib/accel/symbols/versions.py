"""The one table of networks: every fact a runner needs about a version, written once.

A row names a network (the demos' `--version`, the configs' `symbol`), says what it is
called in tables and logs, where its official checkpoint lives, what the paper reports, and
what its update trunk is. Builders read the row: `dff_deeplab.symbol.AccelNetwork` for the
Accel family (Accel-18/34/50/101, DFF), `accel.symbols.deeplab.deeplab_symbol` for the
frame-by-frame DeepLab networks. Both packages read this table, so it sits below them.
"""
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = ["Version", "VERSIONS", "ACCEL_VERSIONS", "DEEPLAB_VERSIONS", "REFERENCE",
           "get_version", "version_of_symbol", "PAPER_ROWS", "ACCEL_SOURCE", "DEEPLAB_SOURCE",
           "FLOW_SCALE"]

# FlowNet (every Accel version's and DFF's) regresses flow divided by 20 (FlowNet paper,
# sec. 4) at 1/4 of its input, which is itself half the image here; on the stride-16 feature
# grid one predicted unit is therefore 20 / 8 = 2.5 feature pixels (DFF issue #23). The
# graphs multiply `Convolution5` by it; code reading the raw flow output applies it too.
FLOW_SCALE = 2.5

ACCEL_SOURCE = ("the official Accel models (Google Drive link in the Accel README, 'Demo / "
                "Inference'; the base DFF model with FlowNet is on OneDrive): put them under "
                "./model/ or pass --model PREFIX --epoch N")
DEEPLAB_SOURCE = ("the official DeepLab models (Google Drive link in the Accel README, "
                  "'Training'): put deeplab-<depth>-0000.params under ./model/pretrained/ or "
                  "pass --model PREFIX --epoch N")


@dataclass(frozen=True)
class Version:
    """One network: its names, its official file, the paper's numbers and its structure."""

    name: str                  # key: '18', 'dff', 'deeplab-18', ...
    family: str                # 'accel' (dff_deeplab builder), 'deeplab' (frame by frame) or
    #                            'keyframe' (Accel's keyframe network alone, at interval 1)
    method: str                # name in tables and logs: 'Accel-18', 'DFF', 'DeepLab-18'
    symbol: str                # cfg.symbol of its configs
    subnetworks: str           # the paper table's "sub-networks" column
    official: str              # official checkpoint prefix (epoch 0), relative to the repo
    source: str                # where the official file comes from (for error messages)
    key_interval: int          # KEY_INTERVAL of the released training config (1 = per frame)
    trunk: Optional[str]       # update trunk: 'preact' (zoo ResNet-18/34), 'v1' (ResNet-v1)
    depth: int                 # depth of that trunk
    prefix: str = ""           # name prefix of the trunk's parameters (= TRAIN.arg_prefix)
    head_prefix: Optional[str] = None  # name prefix of the update branch's own head
    fusion: str = "none"       # 'score' (19 + 19 -> 19), 'feature' (2048 + 2048), 'none'
    deformable_groups: Optional[int] = 4  # of the trunk's res5 / conv5 (None: dilated)
    paper_row: Optional[str] = None  # row name in the paper's table (Cityscapes val, i=5)
    paper: Optional[Tuple[float, float]] = None  # (mIoU %, seconds per frame on a K80)

    @property
    def slug(self) -> str:
        """The method as a file-name part: 'accel-18', 'deeplab-101-dilated'."""
        return re.sub(r"[^a-z0-9]+", "-", self.method.lower()).strip("-")


def _accel(name, method, trunk, depth, prefix, head, fusion, k, paper_row, paper, subnets):
    return Version(name, "accel", method, "dff_deeplab" if name == "dff" else "accel_" + name,
                   subnets, "model/accel-18" if name == "dff" else "model/accel-" + name,
                   ACCEL_SOURCE, k, trunk, depth, prefix, head, fusion, 4, paper_row, paper)


def _deeplab(depth, symbol, method, trunk, groups, subnets, paper_row=None, paper=None):
    return Version("deeplab-%d" % depth, "deeplab", method, symbol, subnets,
                   "model/pretrained/deeplab-%d" % depth, DEEPLAB_SOURCE, 1, trunk, depth,
                   deformable_groups=groups, paper_row=paper_row, paper=paper)


# In the paper table's order. DFF is the warped branch of any Accel model: its DeepLab-101
# and FlowNet stay frozen during Accel training, so the Accel-18 file holds DFF unchanged.
_ROWS = [
    _accel("dff", "DFF", None, 101, "", None, "none", 5, "Deep Feature Flow", (68.7, 0.25),
           "DeepLab, ResNet-v1-101, FlowNet"),
    _accel("18", "Accel-18", "preact", 18, "18_", "18_", "score", 5, "Accel-18", (72.1, 0.44),
           "DeepLab, ResNet-v1-18, FlowNet"),
    _accel("34", "Accel-34", "preact", 34, "34_", "34_", "score", 5, "Accel-34", (72.4, 0.53),
           "DeepLab, ResNet-v1-34, FlowNet"),
    _accel("50", "Accel-50", "v1", 50, "50_", "curr_", "score", 5, "Accel-50", (74.2, 0.67),
           "DeepLab, ResNet-v1-50, FlowNet"),
    # The keyframe network (deformable res5) on every frame: any Accel version at interval 1.
    Version("deeplab", "keyframe", "DeepLab-101", "dff_deeplab", "DeepLab, ResNet-v1-101",
            "model/accel-18", ACCEL_SOURCE, 1, None, 101, paper_row="Frame-by-frame baseline",
            paper=(75.2, 0.74)),
    _accel("101", "Accel-101", None, 101, "", None, "feature", 3, "Accel-101", (75.5, 0.87),
           "DeepLab, ResNet-v1-101, FlowNet"),
    # Frame-by-frame DeepLab (deeplab/): the initialisation of the keyframe branch (dilated
    # res5) and the update branches trained alone; Accel loads them with TRAIN.arg_prefix.
    _deeplab(101, "deeplab_resnet_v1_101", "DeepLab-101 (dilated)", "v1", None,
             "DeepLab, ResNet-v1-101 (dilated)"),
    _deeplab(18, "deeplab_resnet_18", "DeepLab-18", "preact", 4, "DeepLab, ResNet-18"),
    _deeplab(34, "deeplab_resnet_34", "DeepLab-34", "preact", 4, "DeepLab, ResNet-34"),
    _deeplab(50, "deeplab_resnet_50", "DeepLab-50", "v1", 4, "DeepLab, ResNet-50"),
]
VERSIONS: Dict[str, Version] = {row.name: row for row in _ROWS}

# The demos' and tables' --version choices (Accel family; 'deeplab' = the keyframe network).
ACCEL_VERSIONS = tuple(row.name for row in _ROWS if row.family == "accel")
# cfg.symbol of the frame-by-frame networks -> row.
DEEPLAB_VERSIONS = {row.symbol: row for row in _ROWS if row.family == "deeplab"}
# What every Accel version is at interval 1.
REFERENCE = VERSIONS["deeplab"]
# The paper's table, in its order.
PAPER_ROWS = tuple(row for row in _ROWS if row.paper_row)


def get_version(version) -> Version:
    """A row by name ('18', '34', '50', '101', 'dff', 'deeplab', 'deeplab-18'...; ints ok)."""
    key = str(version)
    if key not in VERSIONS:
        raise ValueError("unknown version %r: expected one of %s"
                         % (version, ", ".join(VERSIONS)))
    return VERSIONS[key]


def version_of_symbol(symbol: str) -> Version:
    """The row a config's `symbol` names ('accel_18', 'dff_deeplab', 'deeplab_resnet_18')."""
    for row in _ROWS:
        if row.symbol == symbol and row.family != "keyframe":
            return row
    raise ValueError("symbol = %r names no network; expected one of %s"
                     % (symbol, ", ".join(sorted({r.symbol for r in _ROWS}))))
