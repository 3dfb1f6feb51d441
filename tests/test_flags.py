"""Every runner's flags (accel.cli.flags): number flags refuse what cannot work before
anything runs, and the one --debug flag is documented where it exists (issue #25)."""
import argparse
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each runner with a command line its parser accepts (required flags given).
RUNNERS = {
    "dff_deeplab/demo.py": [],
    "deeplab/demo.py": [],
    "dff_deeplab/test.py": ["--cfg", "x.yaml"],
    "deeplab/test.py": ["--cfg", "x.yaml"],
    "experiments/dff_deeplab/reproduce_tables.py": [],
    "experiments/dff_deeplab/adaptive_keyframes.py": ["--model", "m", "--output", "o"],
    "experiments/export_onnx.py": ["--version", "18"],
    "experiments/launch_dist.py": ["-n", "1", "--", "true"],
    "experiments/deeplab/deeplab_train_test.py": ["--cfg", "x.yaml"],
    "experiments/dff_deeplab/dff_deeplab_end2end_train_test.py": ["--cfg", "x.yaml"],
    "experiments/flownet/train_flownet.py": ["--cfg", "x.yaml"],
    "deeplab/train.py": ["--cfg", "x.yaml"],
    "dff_deeplab/train_end2end.py": ["--cfg", "x.yaml"],
}
# The training runners take their numbers as KEY=VALUE overrides (checked by accel.config).
NUMBER_RUNNERS = sorted(p for p in RUNNERS if "train" not in Path(p).name)
# Number flags whose negative values mean something (a threshold below every signal).
NEGATIVE_ALLOWED = {"--threshold"}

PARSE = argparse.ArgumentParser.parse_args


class _Captured(Exception):
    def __init__(self, parser):
        super().__init__("parser captured")
        self.parser = parser


def _load(path):
    spec = importlib.util.spec_from_file_location(Path(path).stem + "_under_test", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parser(path, monkeypatch) -> argparse.ArgumentParser:
    """The parser a runner's main() builds (caught at its first parse)."""
    def capture(self, *args, **kwargs):
        raise _Captured(self)
    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", capture)
        m.setattr(argparse.ArgumentParser, "parse_intermixed_args", capture)
        m.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        with pytest.raises(_Captured) as got:
            _load(path).main(list(RUNNERS[path]))
    return got.value.parser


def _number_flags(parser):
    """(option, nargs) of every flag whose type gives a number."""
    out = []
    for action in parser._actions:
        if not action.option_strings or action.type is None or action.choices:
            continue
        try:
            probe = action.type("1")
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            continue
        if isinstance(probe, (int, float)) and not isinstance(probe, bool):
            out.append((action.option_strings[-1], action.nargs))
    return out


def _refused(parser, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        PARSE(parser, argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def _with(base, flag, nargs, value):
    values = [value] * (nargs if isinstance(nargs, int) else 1)
    if "--" in base:                      # launch_dist: flags before the command
        cut = base.index("--")
        before = [a for i, a in enumerate(base[:cut]) if not (
            a == flag or (i > 0 and base[i - 1] == flag))]
        return before + [flag, *values] + base[cut:]
    return list(base) + [flag, *values]


@pytest.mark.parametrize("path", NUMBER_RUNNERS)
def test_number_flags_are_finite_and_in_range(path, monkeypatch, capsys):
    """#25.5 (--fps inf/nan) and #25.8 (--threshold nan): every int and float flag of every
    runner refuses nan, inf and (but for a threshold) negative values, naming the flag and
    what is allowed, before anything runs."""
    parser = _parser(path, monkeypatch)
    base = list(RUNNERS[path])
    PARSE(parser, base)                               # the runner's minimal command line
    flags = _number_flags(parser)
    assert flags, f"{path}: no number flags found"
    for flag, nargs in flags:
        for bad in ("nan", "inf", "-inf", "1e999") + (() if flag in NEGATIVE_ALLOWED
                                                      else ("-1",)):
            err = _refused(parser, _with(base, flag, nargs, bad), capsys)
            assert f"argument {flag}" in err or flag in err, (path, flag, bad, err)
            assert "expected" in err, (path, flag, bad, err)


@pytest.mark.parametrize("path", sorted(RUNNERS))
def test_every_runner_documents_debug(path, monkeypatch):
    """#25.14: --debug (tracebacks, handled by accel.cli.run) is in every runner's --help."""
    assert "--debug" in _parser(path, monkeypatch).format_help()


def test_the_table_script_help_names_only_its_own_flags(monkeypatch):
    """#25.14: reproduce_tables --help mentioned --cfg and --video, which it does not have."""
    parser = _parser("experiments/dff_deeplab/reproduce_tables.py", monkeypatch)
    options = {o for a in parser._actions for o in a.option_strings}
    text = parser.format_help()
    for flag in ("--cfg", "--video"):
        assert flag not in options and flag not in text, flag


def test_export_refuses_a_class_count_of_zero(capsys):
    """#25.20: `export_onnx.py --classes 0` was a traceback."""
    with pytest.raises(SystemExit) as exit_:
        _load("experiments/export_onnx.py").main(["--version", "18", "--classes", "0",
                                                  "--random-weights"])
    assert exit_.value.code == 2
    assert "argument --classes: '0': expected an integer >= 1" in capsys.readouterr().err
