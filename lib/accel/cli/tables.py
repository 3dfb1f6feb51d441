"""The table script's command line: every version at several keyframe intervals, the
paper's table beside ours (experiments/dff_deeplab/reproduce_tables.py)."""
import argparse
import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

from accel.cli import repo_path
from accel.cli.checks import check_demo_sizes, source_image_size
from accel.cli.data import add_data_arguments, demo_data, open_dataset
from accel.cli.demo import load_model
from accel.cli.flags import add_debug_flag, add_output_arguments, nonnegative_int, positive_int
from accel.cli.keyframes import (add_comparison_arguments, calibration_from_args,
                                 check_comparison_flags)
from accel.cli.runtime import (add_runtime_arguments, add_speed_arguments, runtime_from_args,
                               speed_options)
from accel.core.inference import VideoSegmenter
from accel.core.tester import evaluate_snippets, select_snippets
from accel.keyframes import comparison, report
from accel.keyframes.streams import prepare_streams, test_streams
from accel.networks import accel_network
from accel.symbols.versions import ACCEL_SOURCE, ACCEL_VERSIONS, PAPER_ROWS, REFERENCE, get_version
from accel.utils.checkpoint import list_checkpoints, params_path
from accel.utils.io import write_json, write_text
from accel.utils.outputs import RunOutput, read_results
from accel.utils.plots import line_plot

logger = logging.getLogger("accel.tables")

# What the table script writes into --output (tables.json last: the run is complete).
TABLE_OUTPUTS = ("tables.md", "tables.json") + tuple(
    f"{prefix}miou_vs_{x}.{ext}" for prefix, xs in (("", ("interval", "time")),
                                                   ("keyframes_", ("rate", "time")))
    for x in xs for ext in ("png", "svg"))


def _run_version(row) -> Optional[str]:
    """The `version` a row's runs carry: None for DeepLab-101 (every version at interval 1)."""
    return None if row is REFERENCE else row.name


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The table script's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--versions", nargs="+", choices=list(ACCEL_VERSIONS),
                        default=["dff", "18", "34", "50", "101"], help="networks to run")
    parser.add_argument("--intervals", nargs="+", type=positive_int, default=[1, 2, 3, 4, 5],
                        help="keyframe intervals (1 = DeepLab-101 frame by frame)")
    parser.add_argument("--main-interval", type=positive_int, default=None,
                        help="interval of the README-style table, one of --intervals (default "
                             "5 if run, else the largest)")
    parser.add_argument("--model", action="append", default=[], metavar="VERSION=PREFIX",
                        help="checkpoint prefix of a version (repeatable)")
    parser.add_argument("--epoch", type=nonnegative_int, default=0,
                        help="epoch of every checkpoint")
    parser.add_argument("--reference", choices=list(ACCEL_VERSIONS), default=None,
                        help="whose keyframe network gives the DeepLab-101 row (default: the "
                             "first version run)")
    add_output_arguments(parser, default="output/tables", default_text="output/tables")
    parser.add_argument("--from", dest="from_run", default=None, metavar="DIR",
                        help="no networks: re-make tables.md and the plots from DIR/tables.json"
                             " of a finished run (e.g. at another --main-interval); a partial "
                             "run is refused")
    add_comparison_arguments(
        parser, policies_default="none: no adaptive rows", rates_default=None,
        rates_help="--intervals above 1",
        group=("adaptive keyframes", "rows of fixed against adaptive schedules at the same "
               "keyframe rate, on the continuous test stream (accel.keyframes; "
               "docs/keyframes.md)"))
    add_data_arguments(parser, demo=False)
    add_speed_arguments(parser)
    add_runtime_arguments(parser)
    add_debug_flag(parser)
    return parser


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, before anything runs, flags that contradict each other or would do nothing."""
    if args.main_interval is not None and args.from_run is None \
            and args.main_interval not in args.intervals:
        raise ValueError(f"--main-interval {args.main_interval}: not one of --intervals "
                         f"{' '.join(map(str, args.intervals))}; the table at that interval "
                         f"would have no runs (add it to --intervals)")
    check_comparison_flags(args)


def table_output(folder: str, overwrite: bool = False) -> RunOutput:
    """The table script's --output folder (accel.utils.outputs; tables.json written last)."""
    return RunOutput(folder, "reproduce_tables", TABLE_OUTPUTS, overwrite=overwrite,
                     legacy=("settings", "runs"), results="tables.json")


def model_prefixes(args: argparse.Namespace, versions: Sequence[str]) -> Dict[str, str]:
    """{version: checkpoint prefix}; raise listing every missing file at once."""
    given = {}
    for item in args.model:
        version, sep, prefix = item.partition("=")
        if not sep or version not in ACCEL_VERSIONS or not prefix:
            raise ValueError(f"--model {item!r}: expected VERSION=PREFIX with VERSION one of "
                             f"{list(ACCEL_VERSIONS)}")
        given[version] = prefix
    prefixes = {v: given.get(v) or repo_path(get_version(v).official) for v in versions}
    missing = [params_path(p, args.epoch) for v, p in prefixes.items()
               if args.epoch not in list_checkpoints(p)]
    if missing:
        raise FileNotFoundError("model file(s) not found: " + ", ".join(sorted(set(missing)))
                                + ". They come from --model VERSION=PREFIX or from "
                                + ACCEL_SOURCE)
    return prefixes


def run_all(args: argparse.Namespace) -> Dict[str, Any]:
    """Evaluate every (version, interval); returns {'runs': [...], 'settings': {...}}."""
    if any(i < 1 for i in args.intervals):
        raise ValueError(f"--intervals must all be >= 1, got {args.intervals}")
    versions = list(dict.fromkeys(args.versions))
    reference = args.reference or versions[0]
    need = list(dict.fromkeys(versions + ([reference] if 1 in args.intervals else [])))
    # DFF last: its adaptive rows reuse the recordings of an Accel version on its checkpoint
    need.sort(key=lambda v: v == "dff")
    prefixes = model_prefixes(args, need)
    data = demo_data(args)
    dataset = open_dataset(data)
    # Frames too large for the memory: refused before a model is loaded (issue #25.6).
    check_demo_sizes(args, data, source_image_size(frame_path=dataset.all_items[0].segment[0]),
                     "accel-reference" if args.reference_path else "accel")
    runtime = runtime_from_args(args)
    speed = speed_options(args, data, runtime)
    fast = speed.pop("fast")
    num_ex = 0 if args.num_ex is None else args.num_ex
    runs: List[Dict[str, Any]] = []
    adaptive = _adaptive_setup(args, data, dataset, versions) if args.keyframe_policies else None
    started = time.perf_counter()
    for version in need:
        arg_params, aux_params = load_model(prefixes[version], args.epoch,
                                            "--model or " + ACCEL_SOURCE)
        network = accel_network(version, data.num_classes, fast=fast)
        intervals = [i for i in args.intervals if i > 1] if version in versions else []
        if version == reference and 1 in args.intervals:
            intervals = [1] + intervals
        for interval in intervals:
            method = REFERENCE.method if interval == 1 else get_version(version).method
            seg = VideoSegmenter(network, arg_params, aux_params, interval, runtime=runtime,
                                 source=params_path(prefixes[version], args.epoch),
                                 allow_extra=args.allow_extra_params or version == "dff",
                                 **speed)
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
        if adaptive is not None and version in versions:
            cand = comparison.Candidate(version, network, arg_params, aux_params,
                                       params_path(prefixes[version], args.epoch),
                                       allow_extra=args.allow_extra_params or version == "dff",
                                       options=dict(speed, runtime=runtime))
            adaptive.summary["versions"].update(comparison.compare(
                [cand], adaptive.streams, dataset, adaptive.cal_streams, adaptive.rates,
                args.keyframe_policies, cache=adaptive.cache))
        del arg_params, aux_params
    settings = {"dataset": data.name, "split": data.split, "root": data.root,
                "scales": data.scales, "stride": data.stride, "device": runtime.device,
                "runtime": runtime.name, "precision": args.precision,
                "protocol": "average over offsets" if args.avg else "worst case",
                "num_ex": num_ex, "reference": reference, "epoch": args.epoch,
                "int8": args.int8,
                "total_seconds": time.perf_counter() - started}
    out = {"settings": settings, "runs": runs}
    if adaptive is not None:
        done = adaptive.summary["versions"]
        out["keyframes"] = dict(adaptive.summary, versions={v: done[v] for v in versions})
    return out


@dataclass
class _AdaptiveRows:
    """The adaptive rows' inputs, set up before any network runs, and their results."""

    rates: List[int]
    streams: List                 # prepared test streams (accel.keyframes.streams)
    cal_streams: List             # the training split's calibration streams
    summary: Dict[str, Any]       # what tables.json keeps; 'versions' filled per version
    cache: Dict = field(default_factory=dict)  # recordings DFF shares, consistency flows


def _adaptive_setup(args: argparse.Namespace, data, dataset, versions) -> _AdaptiveRows:
    """What the adaptive rows need before any network runs: the test stream, the training
    split's calibration streams (an error here stops the run before anything is written)."""
    rates = args.keyframe_rates or [i for i in args.intervals if i > 1]
    if not rates or any(r < 2 for r in rates):
        raise ValueError(f"--keyframe-rates must be >= 2 (rate 1/I), got {rates or 'none'} "
                         f"(default: the --intervals above 1)")
    cal = calibration_from_args(
        args, data.name, lambda split: open_dataset(replace(data, split=split, label_root=None)),
        data.split)
    streams = prepare_streams(test_streams(dataset), dataset)
    summary = {"rates": rates, "policies": list(args.keyframe_policies),
               "model": ", ".join(versions), "versions": {},
               "test": f"{data.root} ({data.split}): {len(streams)} stream(s), "
                       f"{sum(map(len, streams))} frames",
               "calibration": {"what": cal.describe()}}
    return _AdaptiveRows(rates, streams, cal, summary)


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
    for row in PAPER_ROWS:
        run = _find(runs, _run_version(row), main_interval)
        if run is None:
            continue
        lines.append(f"| {row.paper_row} | {row.subnetworks} | {_num(run['mIoU'])} | "
                     f"{_num(run['time_per_frame'], pct=False)} | {row.paper[0]} | "
                     f"{row.paper[1]} |")
    lines += ["", "mIoU (%) / time per frame (s) by keyframe interval "
              "(interval 1 is DeepLab-101 for every version):", "",
              "| Method | " + " | ".join(f"i={i}" for i in intervals) + " |",
              "|---|" + "---:|" * len(intervals)]
    reference = _find(runs, None, 1)
    for row in PAPER_ROWS:
        name, version = row.paper_row, _run_version(row)
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
    for row in PAPER_ROWS:
        run = _find(runs, _run_version(row), main_interval)
        if run is not None:
            name = row.paper_row
            by = {int(d): v for d, v in run["by_distance"].items()}
            lines.append(f"| {name} | " + " | ".join(_num(by.get(d)) for d in distances) + " |")
    lines += ["", f"Total run time {s['total_seconds']:.0f} s."]
    return "\n".join(lines)


def plots(results: Dict[str, Any], out_dir: str) -> List[str]:
    """mIoU against interval and against time per frame, one line per method."""
    runs = results["runs"]
    reference = _find(runs, None, 1)
    by_interval, by_time = {}, {}
    for row in PAPER_ROWS:
        name, version = row.paper_row, _run_version(row)
        series = [r for r in runs if version is not None and r["version"] == version]
        if not series:
            continue
        series = sorted(series + ([reference] if reference is not None else []),
                        key=lambda r: r["interval"])
        by_interval[name] = ([r["interval"] for r in series], [100 * r["mIoU"] for r in series])
        by_time[name] = ([r["time_per_frame"] for r in series],
                         [100 * r["mIoU"] for r in series])
    if reference is not None:
        by_time[REFERENCE.method] = ([reference["time_per_frame"]], [100 * reference["mIoU"]])
    paths = []
    for name, series, x_label in (("miou_vs_interval", by_interval, "keyframe interval"),
                                  ("miou_vs_time", by_time, "time per frame (s)")):
        try:
            paths += line_plot(os.path.join(out_dir, name + ".png"), series, x_label,
                               "mIoU (%)", "mIoU against " + x_label,
                               x_log=name == "miou_vs_time")
        except ValueError as err:  # e.g. runs too short to leave frames after warm-up
            logger.warning("%s.png not drawn: %s", name, err)
    return paths


def tables(argv: Optional[Sequence[str]], description: str = "") -> Dict[str, Any]:
    """Run everything (or read --from DIR) and write tables.md, the plots and, last,
    tables.json into --output (accel.utils.outputs: checked first, locked while written,
    INCOMPLETE until done)."""
    args = build_parser(description).parse_args(argv)
    check_flags(args)
    output = table_output(args.output, args.overwrite)
    output.check()
    if args.from_run is not None:
        results = read_results(args.from_run, "--from")
        intervals = sorted({r["interval"] for r in results["runs"]})
        if args.main_interval is not None and args.main_interval not in intervals:
            raise ValueError(f"--main-interval {args.main_interval}: {args.from_run} has runs "
                             f"at intervals {' '.join(map(str, intervals))} only")
    with output:
        if args.from_run is None:
            results = run_all(args)
        output.start()
        intervals = sorted({r["interval"] for r in results["runs"]})
        main_interval = args.main_interval or (5 if 5 in intervals else max(intervals))
        text = markdown(results, main_interval)
        if "keyframes" in results:
            text += "\n\n" + report.markdown(
                results["keyframes"], "## Fixed vs adaptive keyframes (continuous stream)")
        write_text(os.path.join(args.output, "tables.md"), text)
        results.pop("plots", None)
        drawn = plots(results, args.output)
        if "keyframes" in results:
            drawn += report.plots(results["keyframes"], args.output, "keyframes_")
        write_json(os.path.join(args.output, "tables.json"), results)   # last: complete
    results["plots"] = drawn
    logger.info("tables in %s\n%s", args.output, text)
    return results
