"""Export of the Accel, DFF and DeepLab graphs to ONNX, and a runtime for the exported files.

* `accel.export.converters`: converters for the ops MXNet's exporter lacks (warp,
  deformable convolution, fix_gamma BatchNorm);
* `accel.export.onnx`: `export_graph`, a Symbol to an ONNX file with them;
* `accel.export.networks`: the Accel/DFF and DeepLab graphs as files (`export_network`);
* `accel.export.onnxruntime`: `OrtGraph`, an exported graph in ONNX Runtime with the
  `forward` / `set_input` interface of an accel.runtime Graph.

They need the `onnx` (< 1.15, for mx.onnx) and `onnxruntime` packages; import the
submodules explicitly. The command line, with the check of a file against MXNet, is
accel.cli.export (experiments/export_onnx.py).
"""
