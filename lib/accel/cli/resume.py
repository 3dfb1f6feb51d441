"""--resume against the config a run was started with: differences shown, refused unless
accepted (issue #25.15).

A run folder keeps the merged config of its last start (<run folder>/<cfg name>.yaml,
accel.utils.paths.saved_config_path). Resuming with another learning rate, FLIP, data set
or network would silently continue a different experiment under the same name, so every
difference is listed and the resume refused, unless `--accept-config-changes`: then the
differences are appended to <run folder>/config_changes.log (with the epoch resumed from)
and the new config replaces the saved one as the run starts. Keys that only say how long
to train, how to test or how much to log may change freely (RESUMABLE).
"""
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Tuple

__all__ = ["RESUMABLE", "CHANGES_LOG", "config_differences", "check_resume_config"]

logger = logging.getLogger("accel")

# Keys a resumed run may change without changing the training done so far.
RESUMABLE = ("TRAIN.end_epoch", "TRAIN.RESUME", "TRAIN.keep_states", "TRAIN.legacy_states",
             "default.frequent", "dataset.test_image_set", "TEST.")
CHANGES_LOG = "config_changes.log"


def _flat(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]
                       ) -> List[Tuple[str, Any, Any]]:
    """(key, old value, new value) of every key that differs and is not RESUMABLE."""
    a, b = _flat(old), _flat(new)
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)
            and not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE)]


def check_resume_config(cfg, saved_path: str, accept: bool, resumed_from: str) -> List[str]:
    """Compare `cfg` with the run's saved config at `saved_path` (nothing to compare: []);
    raise ValueError listing the differences unless `accept`, then log them beside it.
    Returns the differences as 'KEY: old -> new'."""
    from accel.config import ConfigError, config_to_dict, load_config

    if not os.path.isfile(saved_path):
        return []
    try:
        saved = load_config(saved_path)
    except (ConfigError, OSError, ValueError) as err:
        logger.warning("--resume: cannot compare with the saved config %s (%s)", saved_path,
                       str(err).splitlines()[0])
        return []
    changes = [f"{k}: {old!r} -> {new!r}" for k, old, new in
               config_differences(config_to_dict(saved), config_to_dict(cfg))]
    if not changes:
        return []
    if not accept:
        raise ValueError(f"--resume: the config differs from the one this run was started "
                         f"with ({saved_path}): {'; '.join(changes)}; resume with the same "
                         f"config, start a new run (output_path=NEW_FOLDER), or pass "
                         f"--accept-config-changes to continue with these changes (recorded "
                         f"in {CHANGES_LOG} beside it)")
    log = os.path.join(os.path.dirname(saved_path), CHANGES_LOG)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} resumed from {resumed_from} with "
                f"--accept-config-changes:\n" + "".join(f"  {c}\n" for c in changes))
    logger.warning("--resume with config changes (recorded in %s): %s", log, "; ".join(changes))
    return changes
