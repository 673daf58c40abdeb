"""Deep-learning experiment template: Lightning + Hydra + W&B.

Kept import-free so `train.py` can compose and validate the config before torch loads.
"""
