"""Imported by pytest before any test module: `accel` first, so that its OMP_NUM_THREADS
default applies before MXNet loads."""
import accel  # noqa: F401

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def deeplab18(tmp_path_factory):
    """Checkpoints of a DeepLab-18 for CamVid's 11 classes (64x96 frames: seconds per demo):
    'good', 'broken' (score_weight missing) and 'extra' (a parameter no graph uses)."""
    import mxnet as mx

    from accel.core.initializer import initialize_missing
    from accel.symbols.deeplab import deeplab_symbol
    from accel.utils.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("deeplab18")
    sym = deeplab_symbol("deeplab_resnet_18", 11)
    args, aux = initialize_missing(sym, {"data": (1, 3, 64, 96), "softmax_label": (1, 64, 96)},
                                   {}, {})
    args.pop("softmax_label", None)
    save_checkpoint(str(folder / "dl18"), 0, args, aux)
    save_checkpoint(str(folder / "broken"), 0,
                    {k: v for k, v in args.items() if k != "score_weight"}, aux)
    save_checkpoint(str(folder / "extra"), 0, dict(args, stray_conv_weight=mx.nd.zeros((2, 2))),
                    aux)
    return {name: str(folder / prefix) for name, prefix in
            (("good", "dl18"), ("broken", "broken"), ("extra", "extra"))}

