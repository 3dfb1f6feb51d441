"""The training command lines (accel.cli.train) as a user runs them: every documented
command is an entry point, bad input is one line (traceback with --debug), yaml paths are
relative to the repository root."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CFG = ROOT / "experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml"
RUNNERS = ["experiments/deeplab/deeplab_train_test.py",
           "experiments/dff_deeplab/dff_deeplab_end2end_train_test.py",
           "experiments/flownet/train_flownet.py", "deeplab/train.py",
           "dff_deeplab/train_end2end.py"]


def _run(args, cwd=ROOT, timeout=120):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_runner_is_an_entry_point(runner):
    # Issue #13.2: `python dff_deeplab/train_end2end.py ...` exited 0 doing nothing.
    proc = _run([ROOT / runner, "--help"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--cfg", "--cpu", "--resume", "--overwrite", "--skip-missing", "KEY=VALUE"):
        assert flag in proc.stdout
    proc = _run([ROOT / runner, "--cfg", "no_such.yaml", "--cpu"])
    assert proc.returncode == 1
    assert "config file not found: no_such.yaml" in proc.stderr


def test_configuration_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    # Issue #13.12: the runners printed tracebacks for configuration errors.
    args = [ROOT / RUNNERS[1], "--cfg", SAMPLE_CFG, "--cpu", f"output_path={tmp_path}",
            "TRAIN.lr_stp=1"]
    proc = _run(args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "TRAIN.lr_stp: unknown key" in errors[0]
    proc = _run(args + ["--debug"])
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_yaml_paths_are_relative_to_the_repository_root(tmp_path):
    # Issue #13.11: relative paths resolved against the current folder, unsaid, and the
    # runner created ./output/ there before failing.
    text = SAMPLE_CFG.read_text().replace('dataset_path: "./sample_data/camvid"',
                                          'dataset_path: "./no_such_data"')
    text = text.replace('output_path: "./output/dff_deeplab/sample"',
                        f'output_path: "{tmp_path}/out"')
    cfg = tmp_path / "moved.yaml"
    cfg.write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _run([ROOT / RUNNERS[1], "--cfg", cfg, "--cpu", "--no-test"], cwd=elsewhere)
    assert proc.returncode == 1
    assert f"{ROOT}/no_such_data/train" in proc.stderr  # the resolved path is printed
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "out" / "moved" / "train" / "moved.yaml").exists()


def test_an_output_path_that_is_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _run([ROOT / RUNNERS[1], "--cfg", SAMPLE_CFG, "--cpu",
                 f"output_path={tmp_path / 'file'}"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path}/file is a file, not a folder" in proc.stderr


# -- issue #25 -----------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["deeplab/test.py", "dff_deeplab/test.py"])
def test_test_entry_points_test_or_print_their_usage(entry, tmp_path):
    """#25.13: the test.py entry points printed nothing and exited 0."""
    proc = _run([ROOT / entry])
    assert proc.returncode == 2 and "usage:" in proc.stderr and "--cfg" in proc.stderr
    proc = _run([ROOT / entry, "--help"])
    assert proc.returncode == 0 and "--epoch" in proc.stdout and "--debug" in proc.stdout
    proc = _run([ROOT / entry, "--cfg", SAMPLE_CFG, "--cpu", f"output_path={tmp_path}"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "-0000.params" in proc.stderr or ".params" in proc.stderr


def _stub_runner(calls):
    from accel.cli.train import Runner
    from accel.core.trainer import TrainResult

    def train(cfg, cfg_path, cpu=False, resume=False, overwrite=False, on_start=None):
        calls.append(cfg)
        on_start()
        return TrainResult("prefix", 0, 1)
    return Runner(train, None, "stub")


def test_resume_with_a_changed_config_shows_the_differences(tmp_path):
    """#25.15: --resume with another learning rate or FLIP silently replaced the run's
    config; now the differences are listed and refused unless accepted (then recorded)."""
    from accel.cli.train import train_test
    from accel.config import checkpoint_prefix, load_config
    from accel.utils.paths import saved_config_path

    calls = []
    base = ["--cfg", str(SAMPLE_CFG), "--cpu", f"output_path={tmp_path}", "TRAIN.lr=0.0005"]
    train_test(base, _stub_runner(calls))
    prefix = checkpoint_prefix(calls[0], str(SAMPLE_CFG))
    Path("%s-0001.params" % prefix).write_bytes(b"a checkpoint")
    saved = saved_config_path(str(Path(prefix).parent), str(SAMPLE_CFG))
    flip = not calls[0].TRAIN.FLIP
    changed = base[:-1] + ["--resume", "TRAIN.lr=0.01", f"TRAIN.FLIP={str(flip).lower()}",
                           "TRAIN.end_epoch=9"]
    with pytest.raises(ValueError) as err:
        train_test(changed, _stub_runner(calls))
    message = str(err.value)
    assert "TRAIN.lr: 0.0005 -> 0.01" in message and "TRAIN.FLIP" in message
    assert "end_epoch" not in message and "--accept-config-changes" in message
    assert len(calls) == 1 and load_config(saved).TRAIN.lr == 0.0005
    train_test(changed + ["--accept-config-changes"], _stub_runner(calls))
    assert len(calls) == 2 and load_config(saved).TRAIN.lr == 0.01
    log = (Path(saved).parent / "config_changes.log").read_text()
    assert "resumed from epoch 1" in log and "TRAIN.lr: 0.0005 -> 0.01" in log
