"""Checkpoint files: written atomically with a `.sha256` beside them, verified and loaded with
`weights_only=True` (nothing in a file chooses code), checked without torch before a run starts, and `last.ckpt`,
the run's latest state, kept current."""
