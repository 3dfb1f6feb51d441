"""Keyframe policies on synthetic observation streams: the fixed schedule is the original's,
the adaptive ones respect their gaps, and the budget mode hits its rate."""
import numpy as np
import pytest

from accel.core.inference import FrameObservation
from accel.core.timing import schedule_stats
from accel.keyframes.budget import (ObservingSegmenter, ReferenceHead, calibrate_for_rate,
                                    calibrate_threshold, simulate)
from accel.keyframes.policies import (AlwaysKey, BranchDisagreement, FixedInterval,
                                      FlowInconsistency, FlowMagnitude, default_gaps,
                                      make_policy)
from accel.keyframes.schedule import replay


def flow_stream(n, seed=0, h=6, w=8, burst=None):
    """Recorded observations with random flows; `burst` = (start, stop) of fast motion."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        speed = rng.gamma(2.0, 0.1)
        if burst and burst[0] <= i < burst[1]:
            speed *= 10
        flow = (speed * (1 + 0.3 * rng.standard_normal((2, h, w)))).astype(np.float32)
        out.append(FrameObservation(i, False, 0, flow=flow))
    return out


def score_stream(n, seed=0, classes=4, h=12, w=16):
    """Branches that agree less as the (recorded) frames go on, with random bursts."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        update = rng.standard_normal((classes, h, w)).astype(np.float32)
        noise = rng.uniform(0.2, 1.5) * rng.standard_normal((classes, h, w)).astype(np.float32)
        out.append(FrameObservation(i, False, 0, flow=np.zeros((2, h, w), np.float32),
                                    warped_scores=update + noise, update_scores=update))
    return out


@pytest.mark.parametrize("interval", [1, 2, 3, 5, 8])
def test_fixed_is_index_modulo_interval(interval):
    flags = replay(FixedInterval(interval), flow_stream(41))
    assert flags == [i % interval == 0 for i in range(41)]
    assert make_policy("fixed", interval=interval).describe() == {"policy": "fixed",
                                                                   "interval": interval}


def test_always_key_is_interval_one():
    stream = flow_stream(17)
    assert replay(AlwaysKey(), stream) == replay(FixedInterval(1), stream) == [True] * 17
    assert make_policy("fixed", rate=1 / 4).interval == 4


def test_policy_sees_no_flow_or_scores_on_keyframes_and_ages_count_up():
    seen = []

    class Spy(FixedInterval):
        def next_is_key(self, obs):
            seen.append(obs)
            return super().next_is_key(obs)

    replay(Spy(3), score_stream(7))
    assert [o.age for o in seen] == [0, 1, 2, 0, 1, 2, 0]
    for o in seen:
        assert (o.flow is None) == o.is_key and (o.update_scores is None) == o.is_key


@pytest.mark.parametrize("cls", [FlowMagnitude, FlowInconsistency])
@pytest.mark.parametrize("gaps", [(1, 4), (2, 6), (3, 3)])
def test_adaptive_policies_keep_min_and_max_gap(cls, gaps):
    lo, hi = gaps
    for threshold in (0.0, 0.2, 1e9):
        flags = replay(cls(threshold, min_gap=lo, max_gap=hi), flow_stream(200, burst=(50, 90)))
        stats = schedule_stats(flags)
        assert lo <= stats["gap_min"] and stats["gap_max"] <= hi, (threshold, stats)
    # threshold 0: every allowed frame is a keyframe (a keyframe shows no flow, so not the
    # one right after it); never: every max_gap-th
    assert schedule_stats(replay(cls(0.0, lo, hi), flow_stream(50)))["gap_max"] == max(lo, 2)
    assert replay(cls(1e9, lo, hi), flow_stream(50)) == [i % hi == 0 for i in range(50)]


def test_flow_policy_puts_keyframes_where_the_motion_is():
    flags = replay(FlowMagnitude(0.8, min_gap=1, max_gap=40), flow_stream(200, burst=(100, 140)))
    calm, fast = np.mean(flags[20:100]), np.mean(flags[100:140])
    assert fast > 2 * calm and fast >= 0.45, (calm, fast)   # ~every 2nd: keys see no flow


def test_flow_inconsistency_ignores_a_pure_translation():
    obs = FrameObservation(1, False, 1, flow=np.full((2, 5, 6), 3.0, np.float32))
    assert FlowInconsistency(0.0).frame_signal(obs) == 0.0
    assert FlowMagnitude(0.0).frame_signal(obs) == pytest.approx(np.sqrt(18))


def test_disagreement_is_the_share_of_cells_whose_class_differs():
    warped = np.zeros((3, 2, 2), np.float32)
    warped[0] = 1                                   # class 0 everywhere
    update = warped.copy()
    update[2, 0, 0] = 5                             # one cell of four says class 2
    obs = FrameObservation(1, False, 1, warped_scores=warped, update_scores=update)
    assert BranchDisagreement(0.0).frame_signal(obs) == 0.25
    with pytest.raises(ValueError, match="update_scores.*flow policy"):
        BranchDisagreement(0.1).next_is_key(FrameObservation(1, False, 1, warped_scores=warped))


@pytest.mark.parametrize("name,stream", [("flow", flow_stream), ("flow-inconsistency", flow_stream),
                                         ("disagreement", score_stream)])
@pytest.mark.parametrize("rate", [1 / 2, 1 / 5, 1 / 8])
def test_budget_mode_hits_its_rate(name, stream, rate):
    lo, hi = default_gaps(rate)
    train = [stream(150, seed=s) for s in range(4)]
    factory = lambda t: make_policy(name, threshold=t, rate=rate)
    cal = calibrate_threshold(factory, train, rate)
    assert abs(cal["rate"] - rate) < 0.02, cal
    # held-out streams of the same kind get close to the rate too
    held = [replay(factory(cal["threshold"]), stream(150, seed=s)) for s in (10, 11)]
    achieved = np.mean([schedule_stats(f)["key_rate_after_first"] for f in held])
    assert abs(achieved - rate) < 0.05, (achieved, rate)
    assert make_policy(name, threshold=1.0, rate=rate).describe()["max_gap"] == hi


def test_calibration_with_a_closed_loop_run_function():
    streams = [flow_stream(120, seed=s) for s in range(2)]
    calls = []

    def run(policy):
        calls.append(policy.threshold)
        return [replay(policy, s) for s in streams]

    cal = calibrate_threshold(lambda t: FlowMagnitude(t, 1, 10), run, 1 / 4, iterations=8)
    assert abs(cal["rate"] - 1 / 4) < 0.03 and cal["evaluations"] == len(set(calls))


def test_schedule_stats():
    flags = [True, True, True, False, False, True, False, True, True]
    times = [0.2, 0.2, 0.2, 0.1, 0.1, 0.2, 0.1, 0.2, 0.2]
    s = schedule_stats(flags, times)
    assert s["keyframes"] == 6 and s["longest_key_run"] == 3
    assert s["gap_min"] == 1 and s["gap_max"] == 3 and s["gap_histogram"] == {1: 3, 2: 1, 3: 1}
    assert s["key_rate_after_first"] == pytest.approx(5 / 8)
    assert s["time_max_s"] == pytest.approx(0.2) and s["time_p99_s"] == pytest.approx(0.2)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="unknown"):
        make_policy("clockwork")
    with pytest.raises(ValueError, match="needs a threshold"):
        make_policy("flow")
    with pytest.raises(ValueError, match="max_gap"):
        FlowMagnitude(1.0, min_gap=5, max_gap=3)
    with pytest.raises(ValueError, match="interval"):
        FixedInterval(0)
    assert default_gaps(1 / 5) == (2, 10) and default_gaps(1 / 2) == (1, 4)


# --- with the real segmenter on the sample clip ---------------------------------------------

@pytest.fixture(scope="module")
def sample_run():
    """Accel-18 (deterministic random weights) over the 12 frames of the sample clip."""
    from pathlib import Path
    from accel.utils.image import read_image
    from dff_deeplab.symbol import AccelNetwork
    from accel.core.tester import prepare_frame
    from oracle import oracle_network_params
    clip = sorted((Path(__file__).resolve().parents[1] / "sample_data" / "camvid" / "val")
                  .glob("*.png"))
    frames = [prepare_frame(read_image(str(p)), (103.06, 115.9, 123.15), (128, 192), 32).data
              for p in clip]
    net = AccelNetwork("18")
    args, aux = oracle_network_params(net, frames[0].shape)
    return net, args, aux, frames


def _drive(seg, frames, policy):
    """Closed loop: the policy decides each next frame; (flags, preds, observations)."""
    policy.reset()
    seg.reset()
    flags, preds, seen, is_key, age = [], [], [], True, 0
    for i, frame in enumerate(frames):
        age = 0 if is_key else age + 1
        result, obs, _ = seg.step(frame, is_key, age, i)
        flags.append(is_key)
        preds.append(result.pred)
        seen.append(obs)
        is_key = policy.next_is_key(obs)
    return flags, preds, seen


def test_segmenter_fixed_policy_is_bit_identical_and_always_is_interval_one(sample_run):
    from accel.core.inference import VideoSegmenter
    net, args, aux, frames = sample_run
    seg = ObservingSegmenter(net, args, aux)
    for interval in (1, 3):
        plain = VideoSegmenter(net, args, aux, interval=interval)
        today = [plain.step(f) for f in frames]
        policy = AlwaysKey() if interval == 1 else FixedInterval(interval)
        flags, preds, _ = _drive(seg, frames, policy)
        assert flags == [r.is_key for r in today] == [i % interval == 0 for i in range(12)]
        assert all(np.array_equal(p, r.pred) for p, r in zip(preds, today))


def test_budget_mode_hits_its_rate_on_the_sample_clip(sample_run):
    net, args, aux, frames = sample_run
    seg = ObservingSegmenter(net, args, aux)
    records = [seg.record(frames)]
    head = ReferenceHead(seg.arg_params)
    for name in ("flow", "disagreement"):
        policy, cal = calibrate_for_rate(name, 1 / 3, records, head, name == "disagreement")
        if name == "flow":   # (random weights: the branches' disagreement is degenerate)
            assert abs(cal["rate"] - 1 / 3) <= 1 / 11 + 1e-9, (name, cal)
        # the segmenter, run closed loop with that threshold, makes the same schedule
        flags, _, seen = _drive(seg, frames, policy)
        again = make_policy(name, threshold=cal["threshold"], rate=1 / 3)
        assert flags == simulate(again, records, head, True)[0], name
        assert sum(flags[1:]) / 11 == pytest.approx(cal["rate"])
    # the NumPy propagation reproduces the segmenter's warped scores
    state = records[0]["state"][0]
    for i in (1, 2):
        state = head.warp(state, records[0]["flow"][i])
        if i == 1:
            _, _, seen = _drive(seg, frames[:3], FixedInterval(3))
        np.testing.assert_allclose(head.scores(state), seen[i].warped_scores, rtol=1e-3,
                                   atol=1e-3)


def test_calibration_streams_fill_each_training_hop_with_test_rate_frames():
    """Budget mode's streams: `pairs` real training pairs in runs of `chunk`; with `steps`
    > 1 each pair gets steps-1 synthetic frames, and every steps-th frame is the real one."""
    from pathlib import Path
    from accel.keyframes.streams import calibration_streams
    from accel.dataset import CamVidVideo
    root = Path(__file__).resolve().parents[1] / "sample_data" / "camvid"
    video = CamVidVideo(root=str(root), split="train", key_interval=1,
                        pixel_means=(103.06, 115.9, 123.15), scales=(64, 96), stride=32,
                        check_frames=False)
    synthetic = calibration_streams(video, pairs=3, chunk=10, steps=15)
    real = calibration_streams(video, pairs=3, chunk=10, steps=1)
    assert len(synthetic) == len(real) == 1                 # 3 pairs < chunk: one run of 3
    assert len(synthetic[0]) == 3 * 15 + 1 and len(real[0]) == 4
    for k, frame in enumerate(real[0]):
        np.testing.assert_array_equal(synthetic[0][15 * k], frame)
    between = synthetic[0][1:15]
    assert all(f.shape == real[0][0].shape for f in between)
    assert not any(np.array_equal(f, real[0][0]) for f in between)
    assert len(calibration_streams(video, pairs=4, chunk=2, steps=1)) == 2
    with pytest.raises(ValueError, match="pairs, chunk and steps >= 1"):
        calibration_streams(video, pairs=0)


def test_calibration_pairs_are_distinct_capped_and_streamed(caplog, monkeypatch):
    """#25.7: asking for more pairs than the split has repeated pairs and reported them as
    real ("35 real pairs" from 7 distinct ones), and every stream was held in memory. Now
    the pairs are distinct, the count says how many exist, and streams are made one at a
    time when iterated."""
    import logging
    from pathlib import Path
    from accel.keyframes import streams as keyframes
    from accel.dataset import CamVidVideo
    root = Path(__file__).resolve().parents[1] / "sample_data" / "camvid"
    video = CamVidVideo(root=str(root), split="train", key_interval=1,
                        pixel_means=(103.06, 115.9, 123.15), scales=(64, 96), stride=32,
                        check_frames=False)                      # 8 frames: 7 distinct pairs
    reads = []
    real_read = keyframes.imutil.read_image
    monkeypatch.setattr(keyframes.imutil, "read_image",
                        lambda p: reads.append(p) or real_read(p))
    with caplog.at_level(logging.WARNING):
        streams = keyframes.calibration_streams(video, pairs=40, chunk=10, steps=1)
    assert "40" in caplog.text and "7 distinct" in caplog.text
    assert streams.pairs == 7 and reads == []                    # nothing read yet
    seen = [[f.copy() for f in s] for s in streams]
    assert sum(len(s) - 1 for s in seen) == 7
    pairs = {(a.tobytes(), b.tobytes()) for s in seen for a, b in zip(s, s[1:])}
    assert len(pairs) == 7                                       # no pair twice
    assert len(reads) == 8
    assert keyframes.calibration_streams(video, pairs=4, chunk=2, steps=1).pairs == 4
