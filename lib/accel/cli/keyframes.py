"""The keyframe flags, defined once, and their wiring to accel.keyframes.

Two groups over one set of definitions: `add_keyframe_arguments` (the demo: one policy,
its threshold or target rate, its gaps) and `add_comparison_arguments` (the table script
and adaptive_keyframes.py: several adaptive policies at several rates); both carry the
calibration flags of budget mode (`--calibration-split/-pairs/-chunk`). The checks refuse
flags that the chosen policy would ignore (issue #25.10); `keyframe_policy` makes the
policy of the flags, calibrating its threshold in budget mode (`BudgetRun`), and
`calibration_from_args` is the one calibration set-up of every runner.
"""
import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from accel.cli.flags import finite_float, fraction, number, positive_int
from accel.keyframes.budget import budget_policy
from accel.keyframes.policies import ADAPTIVE, POLICIES, KeyframePolicy, make_policy
from accel.keyframes.streams import CALIBRATION_CHUNK, CalibrationStreams, calibration_set

__all__ = ["CALIBRATION_DEFAULTS", "add_keyframe_arguments", "add_comparison_arguments",
           "check_keyframe_flags", "check_comparison_flags", "BudgetRun", "keyframe_policy",
           "calibration_from_args"]

# Budget mode's defaults (the flags default to None, so that giving them is seen).
CALIBRATION_DEFAULTS = {"calibration_split": "train", "calibration_pairs": 40,
                        "calibration_chunk": CALIBRATION_CHUNK}
CALIBRATION_FLAGS = tuple(CALIBRATION_DEFAULTS)
# The names adaptive_keyframes.py has always given the comparison's flags.
RUNNER_ALIASES = {"keyframe_policies": "--policies", "keyframe_rates": "--rates",
                  "calibration_split": "--train-split", "calibration_pairs": "--calib-pairs",
                  "calibration_chunk": "--calib-chunk"}
ADAPTIVE_NAMES = ", ".join(ADAPTIVE)


def _add(group, dest: str, aliases: bool, **kwargs) -> None:
    """One flag `--<dest with dashes>` (and its adaptive_keyframes.py name with `aliases`)."""
    names = ["--" + dest.replace("_", "-")]
    if aliases and dest in RUNNER_ALIASES:
        names.append(RUNNER_ALIASES[dest])
    group.add_argument(*names, dest=dest, **kwargs)


def _add_calibration_arguments(group, aliases: bool = False) -> None:
    """Budget mode's calibration streams (accel.keyframes.streams)."""
    _add(group, "calibration_split", aliases, default=None,
         help="the split whose streams set the keyframe thresholds (budget mode; default "
              "train, never the split segmented)")
    _add(group, "calibration_pairs", aliases, type=positive_int, default=None,
         help="distinct consecutive pairs of that split behind the calibration streams "
              "(default 40; at most those the split has)")
    _add(group, "calibration_chunk", aliases, type=positive_int, default=None,
         help=f"consecutive pairs per calibration stream (default {CALIBRATION_CHUNK})")


def add_keyframe_arguments(parser: argparse.ArgumentParser) -> None:
    """Which frames of one run are keyframes (the demo)."""
    key = parser.add_argument_group("keyframes")
    key.add_argument("--keyframe-policy", choices=sorted(POLICIES), default="fixed",
                     help="fixed: every --interval frames (default, the original); adaptive "
                          "policies decide after each frame from its flow or branch scores")
    key.add_argument("--threshold", type=finite_float, default=None,
                     help="an adaptive policy's threshold (a keyframe when its signal "
                          "exceeds it)")
    key.add_argument("--keyframe-rate", type=fraction, default=None, metavar="R",
                     help="target keyframe rate: sets the adaptive policy's gaps (from "
                          "1/(2R) to 2/R frames) and, without --threshold, the threshold "
                          "that gives R on streams of the data set's training split (budget "
                          "mode; recorded in metrics.json)")
    _add_calibration_arguments(key)
    key.add_argument("--min-gap", type=positive_int, default=None,
                     help="at least this many frames from one keyframe to the next")
    key.add_argument("--max-gap", type=positive_int, default=None,
                     help="at most this many frames from one keyframe to the next")


def add_comparison_arguments(parser: argparse.ArgumentParser, policies_default: str,
                             rates_default: Optional[Sequence[int]], rates_help: str,
                             group: Optional[Tuple[str, str]] = None,
                             aliases: bool = False) -> None:
    """Fixed against adaptive schedules (accel.keyframes.comparison): the policies, the
    target rates and the calibration; `group`: (title, description) of an argument group;
    `aliases`: also adaptive_keyframes.py's names for them."""
    where = parser.add_argument_group(*group) if group else parser
    _add(where, "keyframe_policies", aliases, nargs="+", default=None, choices=list(ADAPTIVE),
         metavar="POLICY", help=f"adaptive policies ({ADAPTIVE_NAMES}); each version runs "
                                f"those it supports (default: {policies_default})")
    _add(where, "keyframe_rates", aliases, nargs="+", type=number(int, low=2),
         default=rates_default, metavar="I",
         help=f"target keyframe rates 1/I: the fixed schedule at interval I and each "
              f"adaptive policy at rate 1/I (default: {rates_help})")
    _add_calibration_arguments(where, aliases)


def _given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name, None) is not None


def _refuse(args: argparse.Namespace, unused: Sequence[str], why: str, allowed: str) -> None:
    if unused:
        flags = ", ".join("--" + f.replace("_", "-") + " " + str(getattr(args, f))
                          for f in unused)
        raise ValueError(f"{flags}: not used here ({why}); these flags are for {allowed}")


def check_keyframe_flags(args: argparse.Namespace) -> None:
    """Refuse keyframe flags that --keyframe-policy does not use (they would be ignored)."""
    policy = args.keyframe_policy
    calibration = [f for f in CALIBRATION_FLAGS if _given(args, f)]
    if policy in ("fixed", "always"):
        unused = [f for f in ("threshold", "keyframe_rate", "min_gap", "max_gap")
                  if _given(args, f)] + calibration
        why = (f"--keyframe-policy {policy} decides keyframes by the interval alone" if
               policy == "fixed" else "--keyframe-policy always makes every frame a keyframe")
        _refuse(args, unused, why, "an adaptive --keyframe-policy (flow, flow-inconsistency, "
                                   "disagreement)")
    elif _given(args, "threshold"):
        _refuse(args, calibration, "with --threshold nothing is calibrated",
                "budget mode (--keyframe-rate without --threshold)")
    elif not _given(args, "keyframe_rate"):
        _refuse(args, calibration, "budget mode needs --keyframe-rate",
                "--keyframe-rate R without --threshold")
    if _given(args, "min_gap") and _given(args, "max_gap") and args.min_gap > args.max_gap:
        raise ValueError(f"--min-gap {args.min_gap} --max-gap {args.max_gap}: the minimum gap "
                         f"must not exceed the maximum")


def check_comparison_flags(args: argparse.Namespace) -> None:
    """Refuse the comparison's flags without --keyframe-policies (the table script)."""
    if not args.keyframe_policies:
        unused = [f"--{name.replace('_', '-')}" for name in ("keyframe_rates",)
                  + CALIBRATION_FLAGS if _given(args, name)]
        if unused:
            raise ValueError(f"{', '.join(unused)}: only used by the adaptive rows; add "
                             f"--keyframe-policies POLICY ... or leave them out")


@dataclass
class BudgetRun:
    """What budget mode calibrates with: the data set (`dataset`, its splits opened by
    `open_split(split)`, `reported` the one segmented) and the run's graphs, checkpoint and
    VideoSegmenter `options` (runtime, int8)."""

    dataset: str
    open_split: Callable[[str], Any]
    reported: Optional[str]
    network: Any
    arg_params: Dict[str, Any]
    aux_params: Dict[str, Any]
    source: str = ""
    allow_extra: bool = False
    options: Dict[str, Any] = field(default_factory=dict)


def keyframe_policy(args: argparse.Namespace, interval: int, budget: Optional[BudgetRun] = None
                    ) -> Tuple[Optional[KeyframePolicy], Optional[Dict[str, Any]]]:
    """(the policy of the flags, its budget-mode calibration or None); the policy is None
    for the fixed interval (the segmenter's own). With `budget`, --keyframe-rate without
    --threshold calibrates the threshold (accel.keyframes.budget)."""
    check_keyframe_flags(args)
    if args.keyframe_policy == "fixed":
        if args.threshold is not None:
            raise ValueError("--threshold is for an adaptive --keyframe-policy, not 'fixed'")
        return None, None
    if args.threshold is None and args.keyframe_rate is not None and budget is not None:
        streams = calibration_from_args(args, budget.dataset, budget.open_split,
                                        budget.reported)
        return budget_policy(args.keyframe_policy, args.keyframe_rate, streams, budget.network,
                             budget.arg_params, budget.aux_params, budget.source,
                             budget.allow_extra, args.min_gap, args.max_gap, budget.options)
    return make_policy(args.keyframe_policy, interval, args.threshold, args.keyframe_rate,
                       args.min_gap, args.max_gap), None


def calibration_from_args(args: argparse.Namespace, dataset: str,
                          open_split: Callable[[str], Any], reported: Optional[str]
                          ) -> CalibrationStreams:
    """The calibration streams the flags ask for: split --calibration-split (default train)
    of `dataset`, opened by `open_split(split)`, never the split `reported`."""
    def value(name: str):
        given = getattr(args, name, None)
        return CALIBRATION_DEFAULTS[name] if given is None else given

    return calibration_set(open_split, dataset, value("calibration_split"), reported,
                           value("calibration_pairs"), value("calibration_chunk"))
