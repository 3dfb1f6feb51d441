"""Export of the Accel, DFF and DeepLab graphs to ONNX, and a runtime for the exported files.

* `accel.export.onnx`: converters for the ops MXNet's exporter lacks (warp, deformable
  convolution, fix_gamma BatchNorm) and `export_graph`;
* `accel.export.networks`: the Accel/DFF and DeepLab graphs as files (`export_network`);
* `accel.export.onnxruntime`: `OrtGraph`, an exported graph in ONNX Runtime with the
  `forward` / `set_input` interface of an accel.runtime Graph;
* `accel.export.check`: an exported file against MXNet, output by output.

They need the `onnx` (< 1.15, for mx.onnx) and `onnxruntime` packages; import the
submodules explicitly. The command line is accel.cli.export (experiments/export_onnx.py).
"""
