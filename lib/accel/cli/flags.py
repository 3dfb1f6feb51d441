"""Flags every command line shares: argparse types for numbers, and the one --debug flag.

A number flag is parsed by `number(...)` (or one of its named forms below): the value must
be a finite int or float within the flag's range, else argparse stops with one line naming
the flag, the value and what is allowed (exit 2), before anything runs. `nan`, `inf` and
`1e400` are never accepted.

`--debug` is handled by accel.cli.run (it shows the traceback of an error instead of one
line, and is removed before `main` sees the command line); `add_debug_flag` only documents
it in a runner's --help, so that the one flag is defined once.
"""
import argparse
import math
from typing import Any, Callable, Optional, Union

__all__ = ["number", "positive_int", "nonnegative_int", "positive_float", "finite_float",
           "nonnegative_float", "fraction", "add_debug_flag", "add_output_arguments",
           "DEBUG_HELP"]

Number = Union[int, float]

DEBUG_HELP = ("show the full traceback of an error (default: one line naming the flag, file "
              "or value at fault)")


def _bound_text(low: Optional[Number], high: Optional[Number], low_open: bool,
                high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def number(kind: type = float, low: Optional[Number] = None, high: Optional[Number] = None,
           low_open: bool = False, high_open: bool = False) -> Callable[[str], Number]:
    """An argparse `type`: `kind` (int or float), finite, within [low, high] (open ends with
    `low_open` / `high_open`); the error names the value and the range allowed."""
    what = "an integer" if kind is int else "a finite number"
    bounds = _bound_text(low, high, low_open, high_open)
    allowed = f"{what}{' ' + bounds if bounds else ''}"

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {allowed}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {allowed}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {allowed}")
        return value

    parse.__name__ = f"{kind.__name__} ({allowed})"
    return parse


positive_int = number(int, low=1)
nonnegative_int = number(int, low=0)
positive_float = number(float, low=0, low_open=True)
nonnegative_float = number(float, low=0)
finite_float = number(float)
fraction = number(float, low=0, high=1, low_open=True)       # a rate in (0, 1]


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Document --debug in `parser`'s --help (accel.cli.run acts on it)."""
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def add_output_arguments(parser: Any, default: Optional[str] = None, required: bool = False,
                         default_text: str = "", writer: str = "this script") -> None:
    """--output DIR and --overwrite of a runner whose folder is an accel.utils.outputs
    RunOutput (`parser`: a parser or an argument group; `writer`: who else may have written
    into a folder, for --overwrite's help)."""
    parser.add_argument("--output", default=default, required=required, metavar="DIR",
                        help=f"output folder{f' (default {default_text})' if default_text else ''}"
                             f"; a re-run replaces the files its previous run recorded there "
                             f"(.accel-run.json), never others; one run at a time (locked)")
    parser.add_argument("--overwrite", action="store_true",
                        help=f"write into a non-empty --output that {writer} did not write, "
                             f"beside its files (those are never deleted or replaced)")
