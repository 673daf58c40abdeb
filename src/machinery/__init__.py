"""The machinery: what keeps runs safe and recorded, behind the few calls `src/train.py`, `src/eval.py` and
`src/predict.py` make. A new model, data set or callback never needs it. One room per concern:

    checkpoints/  checkpoint files: atomic, checksummed, verified, `weights_only` loads; last.ckpt
    resume/       what a checkpoint carries to continue or rebuild a run: RNG states, config, checked paths
    runs/         run folders: one per launch, never two runs mixed, never written through a link
    tracking/     W&B and MLflow, the run record (config, git, command line), secrets redacted, console output
    launching/    launchers and distribution: DDP settings, sweeps with DDP, the GPU queue, hardware speed settings
    safety/       the training loop's safety net: preemption signals, the finite-loss guard
    serving/      serving in-memory splits: resumable loaders, batches on the device, batched augmentation
    config/       typed schemas, composition, value checks, plain YAML from untrusted files, building from config
    shims/        every private name of Lightning, torch and Hydra the template uses, each with a test
"""
