"""The timing protocol: warm-up frames left out, percentiles."""
import math

import numpy as np

from accel.core.timing import TimingRecorder, summarize


def test_warmup_leaves_out_the_first_frames_and_each_graphs_first_run():
    rec = TimingRecorder(warmup=2)
    for is_key, net in [(True, 9.0), (True, 8.0), (True, 1.0), (False, 7.0), (False, 2.0)]:
        rec.frame(is_key, net, 0.5)
    rec.finish()
    rep = rec.report()
    assert rep["warmup_frames"] == 3
    assert rep["network"]["key"]["mean"] == 1.0 and rep["network"]["non_key"]["mean"] == 2.0
    s = summarize([1.0, 2.0, 3.0, 10.0])
    assert s["p50"] == np.percentile([1, 2, 3, 10], 50) and s["max"] == 10.0
    assert math.isnan(summarize([])["mean"])
