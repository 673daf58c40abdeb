"""The machinery: what keeps runs safe and recorded, behind the few calls `src/train.py` and `src/eval.py` make.

Checkpoint files and resume state, preemption and the finite-loss guard, tracking and redaction, serving data
(resumable loaders, data on the device, batched augmentation), DDP inside sweeps, and the shims over Lightning's
internals (`lightning_shims.py`). A new model, data set, metric or callback never needs a change here.
"""
