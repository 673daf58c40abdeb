"""The training loop's safety net: a clean stop on SIGTERM / SIGUSR1 (last.ckpt saved, SLURM requeue) and a
stop (or a skipped batch) at a NaN or infinite loss."""
