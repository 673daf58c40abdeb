"""What the console shows: each record once, in Hydra's log format, without known third-party noise."""

import logging
import warnings


class _DropTips(logging.Filter):
    """Lightning advertises its cloud products at INFO level on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def tidy_console() -> None:
    """Call after importing lightning and before training."""
    # `import lightning` adds its own stream handler; Hydra's handlers (console + run log file)
    # already receive the same records, so every line would be printed twice.
    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    # lightning 2.6.6 uses a torch.utils._pytree API that torch 2.14 deprecates; nothing to act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
