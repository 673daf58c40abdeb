"""`python -m tests.reaper <command>`: run a command as a child subreaper and print, as JSON, the exit code and
time of every process it started, however deep (a DDP run's ranks included, even once their parent is gone)."""

import ctypes
import json
import os
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphaned descendants become our children
    start = time.monotonic()
    with open(os.environ["REAPER_LOG"], "w") as log:
        subprocess.Popen(sys.argv[1:], stdout=log, stderr=subprocess.STDOUT)
        exits = {}
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # no children left
                break
            exits[pid] = {"code": os.waitstatus_to_exitcode(status), "seconds": round(time.monotonic() - start, 1)}
    print(json.dumps(exits))


if __name__ == "__main__":
    main()
