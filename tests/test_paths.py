"""accel.utils.paths: the one naming rule for run folders, checkpoints and result files."""
import os

import pytest

from accel.utils import paths


def test_file_names_are_those_of_the_original_layout():
    run = paths.run_dir("/out", "experiments/x/cfgs/accel_18.yaml", "train+val")
    assert run == "/out/accel_18/train_val"
    prefix = paths.run_prefix("/out", "cfgs/accel_18.yaml", "train+val", "accel-18")
    assert prefix == run + "/accel-18"
    assert paths.params_path(prefix, 3) == "/out/accel_18/train_val/accel-18-0003.params"
    assert paths.states_path(prefix, 3) == prefix + "-0003.states"
    assert paths.train_state_path(prefix, 12) == prefix + "-0012.json"
    assert paths.symbol_path(prefix) == prefix + "-symbol.json"
    assert paths.results_path(prefix, 3, "val") == prefix + "-0003_val.json"
    assert paths.results_path(prefix, 3, "val", 5) == prefix + "-0003_val_interval5.json"
    assert paths.results_path(prefix, 3, "val", kind="flow") == prefix + "-0003_val_flow.json"
    assert paths.log_path(run, "a/accel_18.yaml", "2026-01-02-03-04-05") == \
        run + "/accel_18_2026-01-02-03-04-05.log"
    assert paths.saved_config_path(run, "a/accel_18.yaml") == run + "/accel_18.yaml"


def test_resolve_against_a_given_base():
    assert paths.resolve("./data/camvid", "/repo") == "/repo/data/camvid"
    assert paths.resolve("../shared/x", "/repo") == "/shared/x"
    assert paths.resolve("/abs/x", "/repo") == "/abs/x"
    assert paths.resolve("", "/repo") == ""


def test_epoch_files_and_stale_temporaries_belong_to_one_prefix(tmp_path):
    prefix = str(tmp_path / "model")
    names = ["model-0001.params", "model-0001.states", "model-0001.json",
             "model-0001_val_interval5.json", ".model-0002.params.abc_12.tmp",
             ".model-0002.states.x.tmp", "model-symbol.json", "modelx-0001.params",
             "model.log", ".other-0001.params.a.tmp"]
    for n in names:
        (tmp_path / n).write_text("x")
    assert [os.path.basename(p) for p in paths.epoch_files(prefix)] == [
        "model-0001.json", "model-0001.params", "model-0001.states",
        "model-0001_val_interval5.json"]
    assert [os.path.basename(p) for p in paths.stale_temporaries(prefix)] == [
        ".model-0002.params.abc_12.tmp", ".model-0002.states.x.tmp"]
    assert paths.epoch_files(str(tmp_path / "absent" / "model")) == []


def test_make_dir_names_the_file_in_the_way(tmp_path):
    # Issue #13.12: an output path that is a file gave only "[Errno 17]".
    (tmp_path / "out").write_text("a file")
    with pytest.raises(NotADirectoryError, match=f"{tmp_path}/out is a file, not a folder"):
        paths.make_dir(str(tmp_path / "out" / "cfg" / "train"), "run folder")
    made = paths.make_dir(str(tmp_path / "new" / "cfg"))
    assert os.path.isdir(made)


def test_utils_paths_reads_no_config():
    import ast
    tree = ast.parse(open(paths.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("accel") for m in imported)
