"""Test wrapper: run train.py (or the script in LAUNCH_SCRIPT) as `python train.py ...` would, after sleeping
START_DELAY_S seconds on ranks other than 0, as a rank on another node or under load starts later."""

import os
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

rank = os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
if rank != "0":
    time.sleep(float(os.environ.get("START_DELAY_S", "0")))
if log_dir := os.environ.get("START_LOG_DIR"):  # when each rank really started, for the test to check
    Path(log_dir, f"rank{rank}.start").write_text(repr(time.time()))
script = ROOT / os.environ.get("LAUNCH_SCRIPT", "train.py")
sys.path.insert(0, str(ROOT))
sys.argv = [str(script), *sys.argv[1:]]
runpy.run_path(str(script), run_name="__main__")
