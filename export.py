"""Export a checkpoint written by train.py to ONNX or a torch.export program, verified on the test split.

python export.py ckpt_path=outputs/train/<date>_<time>/checkpoints/last.ckpt format=onnx
python export.py ckpt_path=... format=torch_export      # last.pt2; the report: checkpoints/export.json
"""

import sys

import hydra
from omegaconf import DictConfig

from src.errors import ConfigValueError, exit_on_run_error
from src.export import FORMATS
from src.machinery.checkpoints.precheck import check_checkpoint_path
from src.machinery.config.schemas import load_machine_env, register_schemas
from src.machinery.runs.folder import check_run_folder_argument, check_unused_folder_argument

load_machine_env()
register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    with exit_on_run_error():
        if cfg.format not in FORMATS:  # before torch loads
            raise ConfigValueError(f"format={cfg.format} does not exist; valid formats: {list(FORMATS)}")
        check_checkpoint_path(cfg.ckpt_path)
        from src.export.run import export

        export(cfg)


if __name__ == "__main__":
    with exit_on_run_error():
        check_run_folder_argument(sys.argv[1:])
        check_unused_folder_argument(sys.argv[1:])
    main()
