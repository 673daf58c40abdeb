"""Test a checkpoint written by train.py: the model and data come from the config stored in it.

python eval.py ckpt_path=outputs/train/<date>_<time>/checkpoints/last.ckpt
python eval.py ckpt_path=... data=mnist data.data_dir=/elsewhere   # other data, same model
"""

import sys

import hydra
from omegaconf import DictConfig

from src.errors import exit_on_run_error
from src.machinery.checkpoints.precheck import check_checkpoint_path
from src.machinery.config.schemas import check_value_ranges, load_machine_env, register_schemas
from src.machinery.runs.folder import check_run_folder_argument, check_unused_folder_argument

load_machine_env()
register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with exit_on_run_error():
        check_value_ranges(cfg)
        if cfg.get("ckpt_path"):  # checked before torch loads: a typo is reported in under a second
            check_checkpoint_path(cfg.ckpt_path)
        from src.eval import evaluate

        evaluate(cfg)


if __name__ == "__main__":
    with exit_on_run_error():  # before Hydra writes its records and opens the log in an existing run folder
        check_run_folder_argument(sys.argv[1:])
        check_unused_folder_argument(sys.argv[1:])
    main()
