"""Configuration: defaults, strict yaml loading, overrides, dumping, MXNET_VERSION selection."""
import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

import accel.config as config_module
from accel.config import (ConfigError, dump_config, get_defaults, load_config, merge_overrides,
                          parse_gpus, parse_lr_steps)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEL_CFGS = {v: os.path.join(ROOT, "experiments", "dff_deeplab", "cfgs",
                              f"accel_{v}_cityscapes_end2end_ohem.yaml")
              for v in (18, 34, 50, 101)}
DEEPLAB_CFGS = [os.path.join(ROOT, "experiments", "deeplab", "cfgs",
                             f"deeplab_resnet_v1_101_cityscapes_segmentation_{k}.yaml")
                for k in ("base", "demo")]
OFFICIAL_SYMBOLS = os.path.join(ROOT, "tests", "fixtures", "official_symbols_1024x2048.json")


def write_yaml(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# --- the official files ---------------------------------------------------------------------

def test_every_yaml_in_the_repo_loads():
    paths = sorted(glob.glob(os.path.join(ROOT, "experiments", "*", "cfgs", "*.yaml")))
    assert set(ACCEL_CFGS.values()) | set(DEEPLAB_CFGS) <= set(paths)
    for path in paths:
        cfg = load_config(path)
        assert cfg.symbol


@pytest.mark.parametrize("version", [18, 34, 50, 101])
def test_accel_yaml_values_follow_the_design(version):
    cfg = load_config(ACCEL_CFGS[version])
    assert cfg.symbol == f"accel_{version}"
    assert cfg.SCALES == [[1024, 2048]]
    assert cfg.network.PIXEL_MEANS == [103.06, 115.90, 123.15]
    assert cfg.TRAIN.momentum == 0.9 and cfg.TRAIN.wd == 0.0005
    assert (cfg.TRAIN.warmup, cfg.TRAIN.warmup_lr, cfg.TRAIN.warmup_step) == (True, 5e-5, 1000)
    assert cfg.TRAIN.lr == 5e-4
    assert (cfg.TRAIN.CROP_HEIGHT, cfg.TRAIN.CROP_WIDTH) == (768, 1024)
    assert cfg.TRAIN.FLIP is False and cfg.TRAIN.ENABLE_OHEM is False
    assert cfg.TRAIN.KEY_INTERVAL == (3 if version == 101 else 5)
    assert cfg.TRAIN.arg_prefix == ("" if version == 101 else f"{version}_")
    assert cfg.network.pretrained == "./model/rfcn_dff_flownet_vid"
    assert cfg.network.pretrained_base == "./model/pretrained/deeplab-101"
    if version != 101:
        assert cfg.network.pretrained_ec == f"./model/pretrained/deeplab-{version}"


@pytest.mark.parametrize("version", [18, 34, 50, 101])
def test_accel_fixed_params_leave_only_the_fusion_layer_trainable(version):
    if not os.path.isfile(OFFICIAL_SYMBOLS):
        pytest.skip(f"reference names not present: {OFFICIAL_SYMBOLS}")
    with open(OFFICIAL_SYMBOLS) as f:
        entry = json.load(f)[f"accel_{version}.train"]
    names = [n for n in list(entry["args"]) + list(entry["aux"]) if n not in entry["inputs"]]
    fixed = tuple(load_config(ACCEL_CFGS[version]).network.FIXED_PARAMS)
    assert sorted(n for n in names if not n.startswith(fixed)) == ["corr_bias", "corr_weight"]


def test_deeplab_yaml_values_follow_the_design():
    base, demo = (load_config(p) for p in DEEPLAB_CFGS)
    for cfg in (base, demo):
        assert cfg.symbol == "deeplab_resnet_v1_101"
        assert cfg.TRAIN.lr == 5e-4 and parse_lr_steps(cfg.TRAIN.lr_step) == [40.336]
        assert cfg.TRAIN.end_epoch == 53 and cfg.TRAIN.FLIP is True
    assert parse_gpus(base.gpus) == [0, 1, 2, 3]


# --- defaults -------------------------------------------------------------------------------

def test_every_default_key_has_a_comment_above_it():
    with open(config_module.__file__) as f:
        lines = f.read().splitlines()
    assignments = [i for i, line in enumerate(lines) if re.match(r"_C(\.\w+)+ = ", line)]
    assert len(assignments) > 40
    missing = [lines[i] for i in assignments
               if not lines[i].endswith("edict()") and not lines[i - 1].startswith("#")]
    assert missing == []


def test_defaults_are_a_fresh_copy_each_time(tmp_path):
    first = get_defaults()
    first.TRAIN.lr = 123.0
    first.network.FIXED_PARAMS.append("x")
    assert get_defaults().TRAIN.lr != 123.0
    assert get_defaults().network.FIXED_PARAMS == []
    cfg = load_config(write_yaml(tmp_path, "symbol: accel_18\nTRAIN:\n  lr: 0.25\n"))
    assert cfg.TRAIN.lr == 0.25 and get_defaults().TRAIN.lr != 0.25
    assert cfg.TRAIN.momentum == get_defaults().TRAIN.momentum  # untouched keys keep defaults


# --- strictness -----------------------------------------------------------------------------

def test_unknown_key_at_depth_names_key_and_file(tmp_path):
    path = write_yaml(tmp_path, """\
        symbol: accel_18
        TRAIN:
          lrr: 0.1
        """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "TRAIN.lrr" in str(err.value) and path in str(err.value)
    assert "TRAIN.lr" in str(err.value).split("did you mean", 1)[1]


def test_unknown_top_level_key_and_section(tmp_path):
    path = write_yaml(tmp_path, "symbol: accel_18\nRPN:\n  x: 1\nnetwork: 3\n")
    msg = str(pytest.raises(ConfigError, load_config, path).value)
    assert "RPN: unknown key" in msg and "'network': expected a mapping" in msg


@pytest.mark.parametrize("key, text, expected", [
    ("TRAIN.lr", "TRAIN:\n  lr: fast\n", "expected float"),
    ("TRAIN.lr", "TRAIN:\n  lr: 5e-4\n", "expected float"),  # PyYAML reads 5e-4 as a string
    ("TRAIN.end_epoch", "TRAIN:\n  end_epoch: 2.5\n", "expected int"),
    ("TRAIN.end_epoch", "TRAIN:\n  end_epoch: true\n", "expected int"),
    ("TRAIN.FLIP", "TRAIN:\n  FLIP: 1\n", "expected bool"),
    ("gpus", "gpus: 0\n", "expected str"),
    ("gpus", "gpus: 'a,b'\n", "GPU ids"),
    ("TRAIN.lr_step", "TRAIN:\n  lr_step: 40.336\n", "expected str"),
    ("TRAIN.lr_step", "TRAIN:\n  lr_step: '4,2'\n", "increasing"),
    ("network.PIXEL_MEANS", "network:\n  PIXEL_MEANS: [1, x, 3]\n", "expected float"),
    ("network.PIXEL_MEANS", "network:\n  PIXEL_MEANS: [1, 2]\n", "list of 3"),
    ("network.FIXED_PARAMS", "network:\n  FIXED_PARAMS: [conv1, 5]\n", "expected str"),
    ("network.FIXED_PARAMS", "network:\n  FIXED_PARAMS: conv1\n", "expected list"),
    ("network.WARP_OP", "network:\n  WARP_OP: cuda\n", "one of"),
    ("network.INIT_FROM_SCRATCH", "network:\n  INIT_FROM_SCRATCH: [flow, head]\n", "one of"),
    ("SCALES", "SCALES: [[1024, 2048, 3]]\n", "pairs"),
    ("TRAIN.KEY_INTERVAL", "TRAIN:\n  KEY_INTERVAL: 0\n", "> 0"),
])
def test_wrong_type_or_value_names_key_and_file(tmp_path, key, text, expected):
    path = write_yaml(tmp_path, "symbol: accel_18\n" + text)
    msg = str(pytest.raises(ConfigError, load_config, path).value)
    assert f"{key}:" in msg and path in msg and expected in msg


def test_every_error_of_a_file_is_reported_at_once(tmp_path):
    path = write_yaml(tmp_path, "symbol: accel_18\nTRAIN:\n  lr: x\n  wd: y\nTEST:\n  foo: 1\n")
    msg = str(pytest.raises(ConfigError, load_config, path).value)
    assert all(k in msg for k in ("TRAIN.lr:", "TRAIN.wd:", "TEST.foo:"))


def test_int_accepted_where_float_expected(tmp_path):
    cfg = load_config(write_yaml(tmp_path, "symbol: x\nTRAIN:\n  lr: 1\n"
                                           "network:\n  PIXEL_MEANS: [100, 110, 120]\n"))
    assert cfg.TRAIN.lr == 1.0 and isinstance(cfg.TRAIN.lr, float)
    assert all(isinstance(v, float) for v in cfg.network.PIXEL_MEANS)


def test_scales_accept_a_single_pair_and_normalise(tmp_path):
    assert load_config(write_yaml(tmp_path, "symbol: x\nSCALES: [512, 1024]\n")).SCALES == \
        [[512, 1024]]
    assert load_config(write_yaml(tmp_path, "symbol: x\nSCALES:\n- - 512\n  - 1024\n"
                                            "- [256, 512]\n")).SCALES == [[512, 1024], [256, 512]]


def test_missing_file_bad_yaml_and_required_symbol(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    assert missing in str(pytest.raises(ConfigError, load_config, missing).value)
    bad = write_yaml(tmp_path, "TRAIN: [unclosed\n")
    assert bad in str(pytest.raises(ConfigError, load_config, bad).value)
    empty = write_yaml(tmp_path, "TRAIN:\n  lr: 0.1\n")
    assert "symbol: required" in str(pytest.raises(ConfigError, load_config, empty).value)


def test_parse_helpers():
    assert parse_gpus("") == [] and parse_gpus("0, 2") == [0, 2]
    assert parse_lr_steps("") == [] and parse_lr_steps("1.333,2") == [1.333, 2.0]
    with pytest.raises(ValueError):
        parse_gpus("0;1")
    with pytest.raises(ValueError):
        parse_lr_steps("x")


# --- overrides and dumping ------------------------------------------------------------------

def test_merge_overrides_applies_typed_values_without_touching_the_input():
    cfg = load_config(ACCEL_CFGS[18])
    out = merge_overrides(cfg, ["TRAIN.lr=0.001", "gpus=0", "TRAIN.FLIP=true",
                                "SCALES=[512,1024]", "TRAIN.lr_step=40.336", "TEST.KEY_INTERVAL=1",
                                "network.FIXED_PARAMS=[conv1, res2]"])
    assert out.TRAIN.lr == 0.001 and out.gpus == "0" and out.TRAIN.FLIP is True
    assert out.SCALES == [[512, 1024]] and out.TRAIN.lr_step == "40.336"
    assert out.TEST.KEY_INTERVAL == 1 and out.network.FIXED_PARAMS == ["conv1", "res2"]
    assert cfg.TRAIN.lr == 0.0005 and cfg.gpus == "0,1,2,3"
    assert merge_overrides(cfg, ["gpus="]).gpus == ""


@pytest.mark.parametrize("override, expected", [
    ("TRAIN.lrr=1", "TRAIN.lrr: unknown key"),
    ("TRAIN.lr=abc", "TRAIN.lr: expected float"),
    ("TRAIN.end_epoch=2.5", "TRAIN.end_epoch: expected int"),
    ("TRAIN", "expected KEY=VALUE"),
    ("TRAIN=1", "TRAIN: is a section"),
    ("gpus.x=1", "gpus.x: unknown key"),
])
def test_merge_overrides_is_strict(override, expected):
    msg = str(pytest.raises(ConfigError, merge_overrides, get_defaults(), [override]).value)
    assert expected in msg and override in msg


def test_dump_config_round_trips_and_leaves_no_temp_file(tmp_path):
    cfg = merge_overrides(load_config(ACCEL_CFGS[50]), ["TRAIN.lr=0.002"])
    out = tmp_path / "run" / "config.yaml"
    dump_config(cfg, str(out))
    assert load_config(str(out)) == cfg
    assert os.listdir(out.parent) == ["config.yaml"]
    assert yaml.safe_load(out.read_text())["TRAIN"]["arg_prefix"] == "50_"


# --- MXNET_VERSION --------------------------------------------------------------------------

def _run(code, cwd):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def test_mxnet_version_picks_the_external_package(tmp_path):
    pkg = tmp_path / "external" / "mxnet" / "my_build" / "mxnet"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = 'my-build'\n")
    ext = str(tmp_path / "external" / "mxnet")
    rc, out = _run(f"""
        from accel.utils.mxnet_version import import_mxnet
        mx = import_mxnet('my_build', external_dir={ext!r})
        print('VERSION', mx.__version__)
        assert import_mxnet('my_build', external_dir={ext!r}) is mx
        try:
            import_mxnet('mxnet', external_dir={ext!r})
        except ImportError as err:
            print('REFUSED', err)
        """, str(tmp_path))
    assert rc == 0, out
    assert "VERSION my-build" in out and "REFUSED" in out


def test_mxnet_version_errors_name_the_folder(tmp_path):
    ext = tmp_path / "external" / "mxnet"
    (ext / "other" / "mxnet").mkdir(parents=True)
    (ext / "other" / "mxnet" / "__init__.py").write_text("")
    rc, out = _run(f"""
        import sys
        from accel.utils.mxnet_version import import_mxnet
        for name in ('absent', '../x'):
            try:
                import_mxnet(name, external_dir={str(ext)!r})
            except ImportError as err:
                print('ERR', err)
        assert 'mxnet' not in sys.modules
        import mxnet  # now the installed one is loaded ...
        try:
            import_mxnet('other', external_dir={str(ext)!r})  # ... so 'other' cannot be
        except ImportError as err:
            print('ERR', err)
        print('INSTALLED', import_mxnet('mxnet', external_dir={str(ext)!r}) is mxnet)
        """, str(tmp_path))
    assert rc == 0, out
    errors = [line for line in out.splitlines() if line.startswith("ERR")]
    assert len(errors) == 3
    assert str(ext / "absent") in errors[0] and "other" in errors[0]
    assert "'../x'" in errors[1]
    assert "already imported" in errors[2]
    assert "INSTALLED True" in out


def test_a_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("symbol: accel_18\nTRAIN:\n  lr: 0.0005\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match="'lr' is given twice") as err:
        load_config(str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key, line", [("dataset.root_path", "dataset:\n  root_path: ./data\n"),
                                       ("dataset.ignore_label",
                                        "dataset:\n  ignore_label: 255\n"),
                                       ("TEST.BATCH_IMAGES", "TEST:\n  BATCH_IMAGES: 1\n")])
def test_removed_keys_name_the_key_the_file_and_what_to_do(tmp_path, key, line):
    path = tmp_path / "old.yaml"
    path.write_text("symbol: accel_18\n" + line)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert str(path) in message and f"{key}: no longer a key" in message
    assert "delete the line" in message.lower()


def test_new_keys_have_defaults():
    cfg = get_defaults()
    assert cfg.dataset.skip_missing is False
    assert cfg.TRAIN.keep_states == 1 and cfg.TRAIN.legacy_states is False


def test_relative_paths_resolve_against_the_given_base(tmp_path):
    from accel.config import resolve_paths

    cfg = get_defaults()
    cfg.network.pretrained = "/abs/model"
    cfg.network.pretrained_base = ""
    out = resolve_paths(cfg, str(tmp_path))
    assert out.output_path == str(tmp_path / "output")
    assert out.dataset.dataset_path == str(tmp_path / "data" / "cityscapes")
    assert out.network.pretrained == "/abs/model" and out.network.pretrained_base == ""
    assert cfg.output_path == "./output"  # a copy


def test_the_config_loads_the_same_without_easydict():
    """The MXNet-free runtime install has no easydict: accel.utils.attrdict stands in, and
    every shipped config loads to the same values, attribute access and overrides included."""
    script = (
        "import json, sys\n"
        "if sys.argv[1] == 'block': sys.modules['easydict'] = None\n"
        "from accel.config import config_to_dict, load_config, merge_overrides\n"
        "cfg = merge_overrides(load_config(sys.argv[2]), ['TRAIN.lr=0.5'])\n"
        "assert cfg.TRAIN.lr == 0.5 and cfg['TRAIN']['lr'] == 0.5\n"
        "print(json.dumps(config_to_dict(cfg), sort_keys=True, default=str))\n")
    cfg = os.path.join(ROOT, "experiments", "dff_deeplab", "cfgs", "accel_18_camvid_sample.yaml")
    out = {mode: subprocess.run([sys.executable, "-c", script, mode, cfg], capture_output=True,
                                text=True, check=True).stdout for mode in ("block", "plain")}
    assert out["block"] == out["plain"] and '"lr": 0.5' in out["block"]


@pytest.mark.parametrize("text", ["1.0e6", "1e6", "5e-4", "2.5E3", "1e-10", "-3e2", "7E5"])
def test_the_hint_for_an_exponent_read_as_text_loads_as_a_number(tmp_path, text):
    """#25.19: YAML 1.1 (PyYAML) reads `1.0e6` and `1e6` as text; the hint must give a value
    that loads as the same number, in the file and as an override."""

    path = write_yaml(tmp_path, f"symbol: accel_18\nTRAIN:\n  lr: {text}\n")
    for error in (pytest.raises(ConfigError, load_config, path).value,
                  pytest.raises(ConfigError, merge_overrides, get_defaults(),
                                [f"TRAIN.lr={text}"]).value):
        hint = re.search(r"write (\S+?)[ ;,)]", str(error))
        assert hint, str(error)
        assert yaml.safe_load(hint.group(1)) == float(text), (text, hint.group(1))
