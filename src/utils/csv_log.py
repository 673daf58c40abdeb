"""A CSV logger that keeps what a run already wrote when the run is resumed in its folder."""

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's writer deletes an existing metrics.csv; this one appends to it, starting from its columns."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ContinuingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, appending to the run folder's metrics.csv: `resume=true` loses no rows."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
