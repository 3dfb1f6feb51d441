"""Keyframe choice: which frames run the keyframe network, in one package.

* `policies`: the policies (fixed, always, flow, flow-inconsistency, disagreement) and
  `make_policy`, the one constructor of the command lines;
* `schedule`: the one schedule loop (`run_schedule`, `replay`);
* `streams`: the test streams and the training split's calibration streams (`calibration_set`,
  the one calibration set-up);
* `budget`: budget mode, the threshold that gives a target keyframe rate;
* `comparison`: fixed against adaptive schedules on a continuous stream;
* `report`: the comparison's table and plots.

The flags are defined once in accel.cli.keyframes; the segmenter (accel.core.inference)
asks a policy after each frame, and `accel.core.timing.schedule_stats` reports what a
schedule did.
"""
