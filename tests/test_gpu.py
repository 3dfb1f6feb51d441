"""GPU install and device choice: the CUDA library preloading (fake library folder), the
capability gate (simulated capabilities), the one device picker, init.sh's GPU branch up to
the point that needs a driver (pip faked, the rest real); and `gpu` tests that run the
checks of the runtime (accel.core.runtime_check) where a GPU is, skipping with the reason
elsewhere; and experiments/gpu_check.py --dry-run on the CPU."""
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mxnet as mx
import pytest

from accel.utils import device, gpu
from accel.utils.fatbin import fatbin_architectures

REPO = Path(__file__).resolve().parents[1]
CU112 = gpu.MXNET_BUILD_ARCHS[("mxnet-cu112", "1.9.1")]


def compiler_or_skip() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the fake libraries")
    return compiler


# ---------------------------------------------------------------- the capability gate


@pytest.mark.parametrize("capability, runs", [
    ((5, 0), True), ((5, 2), True), ((6, 1), True), ((7, 5), True), ((8, 0), True),
    ((8, 6), True), ((8, 9), True), ((3, 7), False), ((9, 0), False), ((10, 0), False),
    ((12, 0), False)])
def test_cu112_runs_maxwell_to_ada_only(capability, runs):
    assert gpu.runs_on(capability, CU112) is runs


def test_ptx_runs_on_newer_capabilities():
    assert gpu.runs_on((9, 0), [(8, 0)], ptx=[(8, 0)])
    assert not gpu.runs_on((7, 5), [], ptx=[(8, 0)])


def test_unsupported_gpu_is_one_error_naming_gpu_range_and_alternatives(monkeypatch):
    monkeypatch.setenv(gpu.SIMULATE_ENV, "9.0:NVIDIA H200")
    with pytest.raises(gpu.GPUUnsupportedError) as err:
        gpu.check_gpu_supported(0, archs=CU112)
    message = str(err.value)
    for part in ("GPU 0 (NVIDIA H200, compute capability 9.0)", "sm_50, sm_60, sm_70, sm_80, "
                 "sm_86 and no PTX", "compute capability 5.0 to 8.x (Maxwell to Ampere/Ada)",
                 "--cpu", "Ampere/Ada GPU", "CuPy operators", "compile for the device"):
        assert part in message
    assert "\n" not in message


def test_supported_gpu_passes_the_gate(monkeypatch):
    monkeypatch.setenv(gpu.SIMULATE_ENV, "8.9:NVIDIA L4")
    assert gpu.check_gpu_supported(1, archs=CU112) == gpu.GPUDevice(1, "NVIDIA L4", (8, 9))


def test_cpu_build_has_nothing_to_compare(monkeypatch):
    monkeypatch.setenv(gpu.SIMULATE_ENV, "9.0")
    assert gpu.check_gpu_supported(0, archs=()).capability == (9, 0)


def test_bad_simulated_capability_names_value_and_format(monkeypatch):
    monkeypatch.setenv(gpu.SIMULATE_ENV, "nine")
    with pytest.raises(ValueError, match=r"ACCEL_SIMULATE_GPU='nine': expected "
                                         r"'<major>.<minor>\[:<name>\]'"):
        gpu.device_info(0)


def test_installed_mxnet_architectures():
    """The CPU build carries no CUDA code; a GPU wheel gives its table row."""
    libmxnet = os.path.join(os.path.dirname(mx.__file__), "libmxnet.so")
    if gpu.mxnet_gpu_distribution() is None:
        assert fatbin_architectures(libmxnet) == {"cubin": (), "ptx": ()}
        assert gpu.mxnet_cuda_architectures() == ()
    else:
        assert gpu.mxnet_cuda_architectures() == CU112


def _fatbin(entries) -> bytes:
    """A fatbin container: (kind 1=ptx/2=cubin, sm) entries with small payloads."""
    import struct
    body = b""
    for kind, sm in entries:
        payload = bytes(range(24))
        header = struct.pack("<HHIQIIII", kind, 0x101, 64, len(payload), 0, len(payload), 0, sm)
        body += header + b"\0" * (64 - len(header)) + payload
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def test_fatbin_reader_on_a_built_library(tmp_path):
    cc = compiler_or_skip()
    blob = _fatbin([(2, 52), (2, 80), (1, 70)]) + b"\0" * 8 + _fatbin([(2, 90)])
    source = tmp_path / "fat.c"
    source.write_text('__attribute__((section(".nv_fatbin"), used, aligned(8))) '
                      "const unsigned char fatbin[] = {%s};\n" % ",".join(map(str, blob)))
    library = tmp_path / "libfat.so"
    subprocess.run([cc, "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    assert fatbin_architectures(str(library)) == {"cubin": ((5, 2), (8, 0), (9, 0)),
                                                      "ptx": ((7, 0),)}


def test_fatbin_reader_rejects_a_non_elf_file(tmp_path):
    path = tmp_path / "x.so"
    path.write_bytes(b"not an elf file" * 8)
    with pytest.raises(ValueError, match="x.so: not a 64-bit little-endian ELF file"):
        fatbin_architectures(str(path))


# ---------------------------------------------------------------- preloading


@pytest.fixture(scope="module")
def fake_cuda(tmp_path_factory):
    """site-packages-like folder: nvidia/cuda_runtime/lib/libcudart.so.11.0 and
    nvidia/cublas/lib/libcublas{Lt,}.so.11, libcublas NEEDing libcublasLt (no rpath)."""
    cc = compiler_or_skip()
    root = tmp_path_factory.mktemp("site")
    runtime, cublas = root / "nvidia" / "cuda_runtime" / "lib", root / "nvidia" / "cublas" / "lib"
    runtime.mkdir(parents=True)
    cublas.mkdir(parents=True)

    def build(folder, soname, code, *link):
        src = folder / (soname + ".c")
        src.write_text(code)
        subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(folder / soname),
                        f"-Wl,-soname,{soname}", *link], check=True)
        src.unlink()
    build(runtime, "libcudart.so.11.0", "int fake_cudart(void) { return 11; }\n")
    build(cublas, "libcublasLt.so.11", "int fake_lt(void) { return 40; }\n")
    build(cublas, "libcublas.so.11", "int fake_lt(void);\nint fake_cublas(void) "
          "{ return fake_lt() + 2; }\n", f"-L{cublas}", "-l:libcublasLt.so.11")
    return root


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_preloading_makes_fake_libraries_visible_by_soname(fake_cuda):
    proc = run_python(f"""
        import ctypes
        from accel.utils import gpu
        try:
            ctypes.CDLL("libcublas.so.11")
            raise SystemExit("libcublas.so.11 loads without preloading: the test shows nothing")
        except OSError:
            pass
        loaded = gpu.preload_cuda_libraries([{str(fake_cuda)!r}], require_gpu_mxnet=False)
        print([p.split("/nvidia/")[1] for p in loaded])
        print(ctypes.CDLL("libcublas.so.11").fake_cublas(), ctypes.CDLL("libcudart.so.11.0").fake_cudart())
        assert gpu.preload_cuda_libraries([{str(fake_cuda)!r}], require_gpu_mxnet=False) == loaded
        print(gpu.missing_libraries([{str(fake_cuda)!r}])[0].split(":")[0])
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(["cuda_runtime/lib/libcudart.so.11.0", "cublas/lib/libcublasLt.so.11",
                            "cublas/lib/libcublas.so.11"])
    assert lines[1] == "42 11"
    assert lines[2] == "libnvrtc.so.11.2 (pip package nvidia-cuda-nvrtc-cu11)"


def test_preloading_is_a_no_op_without_libraries_or_with_the_cpu_build(fake_cuda, tmp_path):
    if gpu.mxnet_gpu_distribution() is not None:
        pytest.skip("an MXNet GPU build is installed here")
    proc = run_python(f"""
        from accel.utils import gpu
        print(gpu.preload_cuda_libraries([{str(tmp_path)!r}], require_gpu_mxnet=False))
        print(gpu.preload_cuda_libraries([{str(fake_cuda)!r}]))
        print(gpu.preload_cuda_libraries())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "[]", "[]"]


def test_library_path_rejects_unknown_soname():
    with pytest.raises(KeyError, match="'libfoo.so.1' is not one of the CUDA 11 libraries"):
        gpu.library_path("libfoo.so.1", [])


# ---------------------------------------------------------------- the device picker


@pytest.fixture
def two_gpus(monkeypatch):
    """Two simulated Ampere GPUs behind a cu112 build."""
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 2)
    monkeypatch.setattr(gpu, "mxnet_cuda_architectures", lambda: CU112)
    monkeypatch.setenv(gpu.SIMULATE_ENV, "8.6:NVIDIA RTX A6000")


def test_pick_context_order_of_choices(two_gpus):
    assert device.pick_context(cpu=True, gpu=1) == mx.cpu()
    assert device.pick_context(gpu=1, cfg_gpu_ids=[0]) == mx.gpu(1)
    assert device.pick_context(cfg_gpu_ids=[1, 0]) == mx.gpu(1)
    assert device.pick_context(cfg_gpu_ids=[]) == mx.cpu()      # the cfg says gpus: ''
    assert device.pick_context(cfg_gpu_ids=[5]) == mx.cpu()     # the cfg's GPU is absent
    assert device.pick_context() == mx.gpu(0)


@pytest.mark.parametrize("bad", [2, -1])
def test_pick_context_rejects_missing_gpu(two_gpus, bad):
    with pytest.raises(ValueError) as err:
        device.pick_context(gpu=bad)
    assert str(err.value) == f"--gpu {bad}: this machine has 2 GPU(s); use --cpu or an existing id"


def test_pick_context_without_gpus_is_the_cpu(monkeypatch):
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 0)
    assert device.pick_context() == mx.cpu()
    assert device.pick_context(cfg_gpu_ids=[0]) == mx.cpu()


def test_training_contexts(two_gpus):
    assert device.training_contexts([0, 1]) == [mx.gpu(0), mx.gpu(1)]
    assert device.training_contexts([0, 1], cpu=True) == [mx.cpu()]
    assert device.training_contexts([]) == [mx.cpu()]
    with pytest.raises(ValueError) as err:
        device.training_contexts([0, 2])
    assert str(err.value) == ("gpus = '0,2' but this machine has 2 GPU(s); pick existing ids "
                              "or run on the CPU (--cpu, or gpus: '')")
    with pytest.raises(ValueError, match=r"^TEST.gpus = '3' .*\(--cpu, or TEST.gpus: ''\)$"):
        device.training_contexts([3], source="TEST.gpus")


def test_every_gpu_context_passes_the_gate(two_gpus, monkeypatch):
    monkeypatch.setenv(gpu.SIMULATE_ENV, "9.0:NVIDIA H200")
    for pick in (lambda: device.pick_context(), lambda: device.pick_context(gpu=1),
                 lambda: device.pick_context(cfg_gpu_ids=[0]),
                 lambda: device.training_contexts([0, 1])):
        with pytest.raises(gpu.GPUUnsupportedError, match="NVIDIA H200, compute capability 9.0"):
            pick()
    assert device.pick_context(cpu=True) == mx.cpu()


# ---------------------------------------------------------------- init.sh


def init_sh(tmp_path, *args):
    """Run the real init.sh with `$PYTHON -m pip` faked (logged); everything else is real."""
    log = tmp_path / "pip.log"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = pip ]; then\n'
                    f'  echo "$*" >> "{log}"; exit 0\nfi\nexec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake)}
    env.pop("ACCEL_DEVICE", None)
    proc = subprocess.run(["sh", str(REPO / "init.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=300)
    return proc, log.read_text().splitlines() if log.exists() else []


def constraint_pins():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_init_sh_mxnet_gpu_branch_installs_pinned_cuda_libraries_and_checks(tmp_path):
    proc, pip_calls = init_sh(tmp_path, "--mxnet-gpu")
    install = pip_calls[0].split()
    assert install[:4] == ["-m", "pip", "install", "--disable-pip-version-check"]
    assert "-c constraints.txt" in pip_calls[0] and "mxnet-cu112==1.9.1" in install
    packages = {p for p, _, _ in gpu.CUDA11_LIBRARIES} | {"cupy-cuda11x"}
    assert packages <= set(install)
    assert packages <= set(constraint_pins())
    assert constraint_pins()["nvidia-cudnn-cu11"].startswith("8.")  # libcudnn.so.8
    assert "--no-deps" in pip_calls[1] and pip_calls[1].endswith("-e .")
    assert "init.sh: checking MXNet and CuPy on the GPU" in proc.stdout
    if gpu.mxnet_gpu_distribution() is None:
        assert proc.returncode == 1
        assert "no MXNet GPU build is installed (pip package mxnet-cu112)" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("flag", ["--torch", "--gpu"])
def test_init_sh_pytorch_branches(tmp_path, flag):
    """--torch adds PyTorch (pinned) to the CPU install; --gpu also asks for the CuPy of
    PyTorch's CUDA, and says so when the installed PyTorch has none (a CPU-only build)."""
    pytest.importorskip("torch", reason="the branch's last check imports PyTorch")
    import torch

    proc, pip_calls = init_sh(tmp_path, flag)
    assert proc.returncode == 0, proc.stderr
    install = pip_calls[0].split()
    assert "torch" in install and "mxnet==1.9.1" in install and "torch" in constraint_pins()
    cuda = (torch.version.cuda or "").split(".")[0]
    cupy = [c for c in pip_calls if "cupy-cuda" in c]
    if flag == "--gpu" and cuda in ("12", "13"):
        assert cupy and f"cupy-cuda{cuda}x" in cupy[0] and f"cupy-cuda{cuda}x" in constraint_pins()
    else:
        assert not cupy
        if flag == "--gpu":
            assert "has no CUDA build" in proc.stderr
    assert f"init.sh: ok: torch {torch.__version__}" in proc.stdout


def test_init_sh_cpu_branch_unchanged(tmp_path):
    proc, pip_calls = init_sh(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mxnet==1.9.1" in pip_calls[0].split()
    assert "nvidia" not in pip_calls[0] and "cupy" not in pip_calls[0]
    assert "init.sh: ok: mxnet 1.9.1" in proc.stdout


# ---------------------------------------------------------------- the runtime check


def test_gpu_check_dry_run_needs_no_mxnet(tmp_path):
    """experiments/gpu_check.py --dry-run: the whole check on the CPU at a small size, with
    `import mxnet` impossible (the lent GPU machines have none); report.md and .json."""
    pytest.importorskip("torch", reason="the runtime check runs the PyTorch runtime")
    script = ("import sys, runpy; sys.modules['mxnet'] = None\n"
              "sys.argv = ['gpu_check.py'] + sys.argv[1:]\n"
              "runpy.run_path('experiments/gpu_check.py', run_name='__main__')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "lib"), str(REPO)]))
    proc = subprocess.run([sys.executable, "-c", script, "--out", str(tmp_path), "--dry-run"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = __import__("json").loads((tmp_path / "report.json").read_text())
    assert report["failures"] == [] and report["dry_run"]
    assert len(report["fixtures"]) == 7 and all(r["ok"] for r in report["fixtures"])
    assert {(r["method"], r["precision"]) for r in report["timing"]} == {
        ("DeepLab-101", "fp32"), ("DeepLab-101", "bf16"), ("Accel-18", "fp32"),
        ("Accel-18", "bf16")}
    accel18 = [r for r in report["timing"] if r["method"] == "Accel-18"]
    assert all(r["key"]["frames"] >= 1 and r["nonkey"]["frames"] >= 1 for r in accel18)
    assert "| Accel-18 | bf16 |" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- on a GPU


from operator_helpers import cupy_or_skip as cupy_gpu_or_skip  # noqa: E402


def mxnet_gpu_or_skip():
    if gpu.mxnet_gpu_distribution() is None or mx.context.num_gpus() == 0:
        pytest.skip("MXNet's GPU build (mxnet-cu112) is not installed or sees no GPU")
    return mx.gpu(0)


def torch_gpu_or_skip():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return torch


@pytest.mark.gpu
def test_gpu_driver_capability_matches_cupy():
    cupy = cupy_gpu_or_skip()
    props = cupy.cuda.runtime.getDeviceProperties(0)
    assert gpu._driver_device(0).capability == (props["major"], props["minor"])


@pytest.mark.gpu
def test_gpu_install_check_runs_a_convolution():
    mxnet_gpu_or_skip()
    assert gpu.check_install() == 0


@pytest.mark.gpu
def test_gpu_runtime_kernels_match_the_cpu_reference():
    torch_gpu_or_skip()
    from accel.core import runtime_check as check
    rows = check.kernel_parity("cuda:0")
    assert [r for r in rows if not r["ok"]] == []


@pytest.mark.gpu
def test_gpu_runtime_oracle_fixtures():
    torch_gpu_or_skip()
    from accel.core import runtime_check as check
    rows = check.oracle_fixtures(REPO / "tests" / "fixtures" / "oracle_128x256", "cuda:0")
    assert len(rows) == 7 and [r["fixture"] for r in rows if not r["ok"]] == []


@pytest.mark.gpu
def test_gpu_runtime_segments_like_the_cpu():
    """Accel-18 on the GPU: label maps of the CPU's; only the label map leaves the device."""
    torch_gpu_or_skip()
    from accel.core.inference import VideoSegmenter
    from accel.networks import accel_network
    from accel.oracle import synthetic_params
    from accel.runtime import make_runtime
    from accel.utils.image import image_to_tensor, read_image, resize_image

    paths = sorted((REPO / "sample_data" / "camvid" / "val").glob("*.png"))[:4]
    clip = [image_to_tensor(resize_image(read_image(str(p)), (128, 256)), (103.06, 115.9, 123.15))
            for p in paths]
    args, aux = synthetic_params(accel_network("18", 19), clip[0].shape, make_runtime("torch"))
    preds = []
    for gpu_id in (None, 0):
        seg = VideoSegmenter(accel_network("18", 19, True), args, aux, 2,
                             runtime=make_runtime("torch", gpu=gpu_id))
        preds.append([seg.step(f).pred for f in clip])
    for cpu_labels, gpu_labels in zip(*preds):
        assert (cpu_labels == gpu_labels).mean() >= 0.999


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_mxnet_training_one_epoch(tmp_path):
    """MXNet's GPU build (GPUs it supports): one epoch of the sample config on GPU 0."""
    mxnet_gpu_or_skip()
    proc = subprocess.run(
        [sys.executable, "experiments/dff_deeplab/dff_deeplab_end2end_train_test.py", "--cfg",
         "experiments/dff_deeplab/cfgs/accel_18_camvid_sample.yaml", "--no-test",
         f"output_path={tmp_path}", "TRAIN.end_epoch=1", "gpus=0"],
        cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
