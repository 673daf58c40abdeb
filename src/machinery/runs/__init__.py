"""Run folders: one per launch whatever starts the ranks (Lightning, torchrun, SLURM), no second run mixed into a
used folder, and no file of the template written or read through a link planted in one."""
