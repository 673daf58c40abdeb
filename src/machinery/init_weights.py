"""Start a new run from weights (`init_from`): a Lightning checkpoint or a state-dict file, loaded before fit, so
the optimizer, schedule and step count start fresh (`ckpt_path` continues a run instead)."""

import logging

from torch import nn

from src.errors import CheckpointError
from src.machinery.checkpoint_files import read_checkpoint

log = logging.getLogger(__name__)


def init_weights(module: nn.Module, path: str, strict: bool = True) -> None:
    """Load the weights in `path` that fit `module`, listing in the log every key not loaded.

    A network's own state dict (`features.0.weight`) gains the `net.` prefix. With `strict`, a key of another shape,
    missing or unexpected is an error; without, such keys are skipped (a new head). A file that fits fewer than half
    of the module's tensors is another model's, and refused either way.
    """
    loaded = read_checkpoint(path, lightning=False)
    loaded = loaded.get("state_dict", loaded)
    own = module.state_dict()
    if not own.keys() & loaded.keys():
        loaded = {f"net.{key}": value for key, value in loaded.items()}
    shared = own.keys() & loaded.keys()
    left_out = {
        "of another shape": sorted(k for k in shared if getattr(loaded[k], "shape", None) != own[k].shape),
        "missing from the file": sorted(own.keys() - loaded.keys()),
        "not in this model": sorted(loaded.keys() - own.keys()),
    }
    fits = shared - set(left_out["of another shape"])
    if len(fits) < len(own) / 2:
        raise CheckpointError(
            f"init_from={path} fits {len(fits)} of this model's {len(own)} weights: it is another model's "
            f"(it has {left_out['not in this model'][:3]}, this model {left_out['missing from the file'][:3]})"
        )
    if strict and any(left_out.values()):
        found = "; ".join(f"{len(keys)} {what}: {keys}" for what, keys in left_out.items() if keys)
        raise CheckpointError(f"init_from={path} does not fit this model: {found} (init_strict=false skips them)")
    for what, keys in left_out.items():
        if keys:
            log.warning("init_from: %d weights %s, not loaded: %s", len(keys), what, ", ".join(keys))
    module.load_state_dict({key: loaded[key] for key in fits}, strict=False)
    log.info("Initialised %d of %d weights from %s", len(fits), len(own), path)
