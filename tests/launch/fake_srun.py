"""A stand-in for `srun` on one node, for tests: starts SLURM_NTASKS_PER_NODE copies of the command with the
variables srun gives each task (SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID, SLURM_STEP_ID, ...), task 1 onwards
START_DELAY_S seconds late, as under load; with --kill-on-bad-exit=1, a task that fails ends the others."""

import os
import signal
import subprocess
import sys
import time

args = sys.argv[1:]
kill_on_bad_exit = False
while args and args[0].startswith("-"):  # srun's own options, up to the command
    kill_on_bad_exit |= args.pop(0) in ("--kill-on-bad-exit=1", "-K", "--kill-on-bad-exit")
ntasks = int(os.environ.get("SLURM_NTASKS_PER_NODE", "1"))
env = {
    **os.environ,
    "SLURM_NTASKS": str(ntasks),
    "SLURM_NNODES": "1",
    "SLURM_NODEID": "0",
    "SLURM_STEP_ID": "0",
    "SLURM_NODELIST": "localhost",
    "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1"),
}
procs = []
for task in range(ntasks):
    if task:
        time.sleep(float(os.environ.get("START_DELAY_S", "0")))
    procs.append(subprocess.Popen(args, env={**env, "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task)}))
codes: dict[int, int] = {}
while len(codes) < len(procs):
    for task, proc in enumerate(procs):
        if task not in codes and (code := proc.poll()) is not None:
            codes[task] = code
            if code and kill_on_bad_exit:
                for other in procs:
                    if other.poll() is None:
                        other.send_signal(signal.SIGKILL)
    time.sleep(0.1)
sys.exit(next((code for code in codes.values() if code), 0))
