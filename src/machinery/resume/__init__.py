"""What a checkpoint carries beyond the weights, so a run continues or is rebuilt exactly: the random
generators' states, the run's config and class names (rebuilt from conf/ as data, never as code), and a check of
the file paths a resumed checkpoint restores."""
