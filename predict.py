"""Name the class of new images with a checkpoint written by train.py; writes predictions.csv in the run folder.

python predict.py ckpt_path=outputs/train/<date>_<time>/checkpoints/last.ckpt input=photos/
python predict.py ckpt_path=... input='photos/*.jpg' top_k=5
python predict.py ckpt_path=.../checkpoints/last.onnx input=photos/   # a file export.py wrote: onnxruntime alone
python predict.py ckpt_path=.../checkpoints/last.pt2 input=photos/    # a torch.export program: torch alone
"""

import sys

from src.predict_exported import exported_file, main_exported  # imports no torch, Lightning or Hydra

if __name__ == "__main__" and exported_file(sys.argv[1:]):  # an exported file (.onnx, .pt2): another predictor
    main_exported(sys.argv[1:])  # exits

import hydra
from omegaconf import DictConfig

from src.errors import ConfigValueError, exit_on_run_error
from src.machinery.checkpoints.precheck import check_checkpoint_path
from src.machinery.config.schemas import check_value_ranges, load_machine_env, register_schemas
from src.machinery.runs.folder import check_run_folder_argument, check_unused_folder_argument

load_machine_env()
register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_run_error():
        check_value_ranges(cfg)
        if not cfg.get("ckpt_path") or not cfg.get("input"):
            raise ConfigValueError("predict.py needs ckpt_path=<a .ckpt file> and input=<image file, folder or glob>")
        check_checkpoint_path(cfg.ckpt_path)  # checked before torch loads: a typo is reported in under a second
        from src.predict import predict

        predict(cfg)


if __name__ == "__main__":
    with exit_on_run_error():  # before Hydra writes its records and opens the log in an existing run folder
        check_run_folder_argument(sys.argv[1:])
        check_unused_folder_argument(sys.argv[1:])
    main()
