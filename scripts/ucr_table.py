"""Test accuracy of the sequence recipes on the UCR/UEA data sets, mean ± std over seeds, beside 1-NN Euclidean.

    python scripts/ucr_table.py --data-dir ../shared/data/ucr                       # 3 recipes x 4 sets x 3 seeds
    python scripts/ucr_table.py --data-dir ../shared/data/ucr --experiments ucr_fcn --data gunpoint --seeds 0

Each run is `python train.py experiment=<recipe> data=<set> seed=<s>` with the recipe's defaults, at `--threads`
torch threads (`--jobs` runs at once: on a 2-core machine, 2 jobs of 1 thread); its run folder is kept under `--out`
(compare_runs.py reads them: `python scripts/compare_runs.py <out> --group-by group`). The table is printed in
Markdown, with each recipe's wall time per run (mean over its seeds) and the machine it ran on.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# 1-NN with Euclidean distance on these files (../shared/data/README.md): the baseline each recipe must beat.
ONE_NN = {"gunpoint": 0.9133, "italypower": 0.9553, "basicmotions": 0.6000, "japanesevowels": 0.9595}
FINAL = re.compile(r"Final metrics: .*?test/acc=([0-9.]+)")


def run(experiment: str, data: str, seed: int, args: argparse.Namespace) -> tuple[float | None, float, Path]:
    """One training run: (its test accuracy, or None when it failed; its wall time in seconds; its folder)."""
    folder = args.out / experiment / data / f"seed{seed}"
    command = [sys.executable, str(ROOT / "train.py"), f"experiment={experiment}", f"data={data}", f"seed={seed}"]
    command += [f"data.data_dir={args.data_dir}", "trainer=cpu", "logger=csv", f"hydra.run.dir={folder}"]
    command += args.overrides
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    found = FINAL.search(done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        print(f"{experiment} {data} seed {seed} failed ({folder}):\n{done.stderr[-1500:]}", file=sys.stderr)
        return None, seconds, folder
    print(f"{experiment:<12} {data:<15} seed {seed}: test/acc {float(found.group(1)):.4f} in {seconds:.0f} s")
    return float(found.group(1)), seconds, folder


def cell(accuracies: list[float | None], seconds: list[float]) -> str:
    """'0.9911 ± 0.0077 (41 s)': mean ± sample std over the seeds, and the mean wall time of a run."""
    done = [a for a in accuracies if a is not None]
    if not done:
        return "failed"
    spread = f" ± {statistics.stdev(done):.4f}" if len(done) > 1 else ""
    failed = f", {len(accuracies) - len(done)} failed" if len(done) < len(accuracies) else ""
    return f"{statistics.mean(done):.4f}{spread} ({statistics.mean(seconds):.0f} s{failed})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "ucr")
    parser.add_argument("--experiments", nargs="+", default=["ucr_fcn", "ucr_resnet", "ucr_lstm"])
    parser.add_argument("--data", nargs="+", default=list(ONE_NN), choices=list(ONE_NN))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "ucr_table")
    parser.add_argument("overrides", nargs="*", help="more train.py overrides for every run, e.g. trainer.max_epochs=5")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder: give the UCR/UEA archive's (../shared/data/ucr)")
    args.data_dir = args.data_dir.resolve()
    jobs = [(e, d, s) for d in args.data for e in args.experiments for s in args.seeds]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: run(*job, args), jobs), strict=True))
    print(f"\n{len(jobs)} runs in {time.perf_counter() - started:.0f} s; {args.jobs} at once, {args.threads} thread(s)")
    machine = platform.processor() or platform.machine()
    print(f"each; {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n| data set | 1-NN | {' | '.join(args.experiments)} |")
    print(f"|---|---|{'---|' * len(args.experiments)}")
    for data in args.data:
        cells = []
        for experiment in args.experiments:
            runs = [results[experiment, data, seed] for seed in args.seeds]
            cells.append(cell([a for a, _, _ in runs], [t for _, t, _ in runs]))
        print(f"| {data} | {ONE_NN[data]:.4f} | {' | '.join(cells)} |")
    if any(a is None for a, _, _ in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
