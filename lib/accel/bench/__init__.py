"""Benchmarks of this machine, called by the runners of experiments/ (each prints or writes
a Markdown table; accel.core.timing is the one timing summary).

* `stream`: per-frame network time of every version on several runtime paths (MXNet
  reference / fast / INT8, PyTorch fp32 / bf16, ONNX Runtime), frames in turns, and the
  peak memory of a fresh process (experiments/benchmark.py, export_onnx.py --benchmark);
* `peak`: what one large convolution reaches per precision, and a graph's convolution work
  (experiments/benchmark_peak.py);
* `warp`: the fused flow warp against MXNet's GridGenerator + BilinearSampler
  (experiments/benchmark_warp.py);
* `labels`: the compiled label math against NumPy, and the training loader's rate
  (experiments/benchmark_cython.py).
"""
