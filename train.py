"""Train a model: Hydra composes conf/train.yaml with your overrides, then src.train.train runs it.

python train.py                                   # cnn on the bundled digits, CSV + W&B (offline without a key)
python train.py model=resnet model.net.depth=34 data=cifar10 trainer=gpu
python train.py experiment=digits_rnn logger=none
python train.py -m optimizer.lr=1e-3,3e-3,1e-2    # a sweep: one run (and one W&B run) per value
python train.py resume=true hydra.run.dir=outputs/train/<date>_<time>   # continue a stopped run where it stopped
torchrun --nproc-per-node=2 train.py trainer=ddp trainer.devices=2   # srun, SLURM arrays, Kubernetes: docs/launchers.md
"""

import sys

import hydra
from omegaconf import DictConfig

from src.errors import exit_on_run_error
from src.machinery.checkpoints.precheck import check_checkpoint_path
from src.machinery.config.schemas import check_value_ranges, load_machine_env, register_schemas
from src.machinery.runs.folder import check_run_folder_argument
from src.machinery.runs.launch import check_new_run_folder, check_new_run_folder_argument, local_sweep_job

load_machine_env()
register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Bad values, checkpoints and data, NaN losses and preemption end the run with one line and an exit code.
    with exit_on_run_error(sweep_job=local_sweep_job()):  # in a sweep: this job fails, the others run
        check_value_ranges(cfg)
        resuming = bool(cfg.get("resume")) or cfg.get("ckpt_path") == "last"
        if cfg.get("ckpt_path") is not None and not resuming:
            check_checkpoint_path(cfg.ckpt_path)  # missing, empty or damaged: reported before torch loads
        if cfg.get("init_from") is not None:
            check_checkpoint_path(cfg.init_from)
        check_new_run_folder(cfg.paths.output_dir, resuming)  # a second run never mixes into this folder
        # Imported here so a config error is reported before torch and Lightning load.
        from src.train import train

        metrics = train(cfg)
    # A sweeper that optimises (e.g. Optuna) reads the returned value.
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    with exit_on_run_error():  # before Hydra writes its records and opens the log in an existing run folder
        check_run_folder_argument(sys.argv[1:])
        check_new_run_folder_argument(sys.argv[1:])
    main()
