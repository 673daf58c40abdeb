"""The machinery: what keeps runs safe and recorded (checkpoints, preemption, tracking, data serving, DDP, Lightning
shims), behind the few calls `src/train.py` and `src/eval.py` make. A new model, data set or callback never needs it."""
