"""Small named helpers: git state, tracking (W&B), instantiation of config groups."""
