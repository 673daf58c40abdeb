"""Compare finished runs side by side from their folders: what differed, and what each reached.

    python scripts/compare_runs.py                                   # every run under outputs/ and multirun/
    python scripts/compare_runs.py multirun/2026-11-25_19-02-11 --sort test/acc
    python scripts/compare_runs.py outputs --group digits_cnn --tag cnn --keys optimizer.lr model.net.dropout

Each run folder holds `config.yaml` (resolved, with the git commit) and `csv/metrics.csv`. The table shows
the config keys whose values differ between the runs (or `--keys`), the code's commit (`*` when the tree
was dirty), and each run's last value of every metric asked for. `--csv FILE` writes the table too.
"""

import argparse
import csv
import math
from pathlib import Path
from typing import Any

import yaml

# Keys that differ between any two runs without saying anything about them.
NOISE = ("paths.", "hydra.", "callbacks.model_checkpoint.dirpath", "logger.", "trainer.default_root_dir", "git.")
SHOWN = ("group",)  # has its own column
DEFAULT_METRICS = ["val/acc_best", "test/acc", "test/loss"]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def last_values(metrics_csv: Path) -> dict[str, float]:
    """The last logged value of every metric in a Lightning CSVLogger file."""
    values: dict[str, float] = {}
    if not metrics_csv.exists():
        return values
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("epoch", "step")})
    return values


def find_runs(roots: list[Path]) -> list[Path]:
    """Folders under `roots` that hold a run's config.yaml."""
    return sorted({p.parent for root in roots for p in root.rglob("config.yaml") if not p.parent.name.startswith(".")})


def load_run(folder: Path) -> dict[str, Any]:
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    git = config.get("git") or {}
    commit = (git.get("commit") or "-")[:8] + ("*" if git.get("dirty") else "")
    return {"folder": folder, "config": flatten(config), "metrics": last_values(folder / "csv" / "metrics.csv"),
            "commit": commit, "group": config.get("group"), "tags": config.get("tags") or []}  # fmt: skip


def differing_keys(runs: list[dict]) -> list[str]:
    keys = sorted({k for run in runs for k in run["config"]})
    return [
        k for k in keys
        if not k.startswith(NOISE) and k not in SHOWN and len({repr(run["config"].get(k)) for run in runs}) > 1
    ]  # fmt: skip


def table(runs: list[dict], keys: list[str], metrics: list[str]) -> list[list[str]]:
    header = ["run", "group", "commit", *keys, *metrics]
    rows = [header]
    for run in runs:
        cells = [str(run["folder"]), str(run["group"] or ""), run["commit"]]
        cells += [str(run["config"].get(k, "")) for k in keys]
        cells += [f"{run['metrics'][m]:.4f}" if m in run["metrics"] else "" for m in metrics]
        rows.append(cells)
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> list[list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="*", type=Path, default=[Path("outputs"), Path("multirun")])
    p.add_argument("--group", help="only runs of this W&B group")
    p.add_argument("--tag", action="append", default=[], help="only runs with this tag (repeatable)")
    p.add_argument("--keys", nargs="+", help="config keys to show (default: those that differ)")
    p.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    p.add_argument("--sort", help="sort by this metric, best (highest; lowest for a loss) first")
    p.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = p.parse_args(argv)

    runs = [load_run(folder) for folder in find_runs([r for r in args.roots if r.exists()])]
    runs = [r for r in runs if (args.group is None or r["group"] == args.group) and set(args.tag) <= set(r["tags"])]
    if not runs:
        raise SystemExit(f"No runs (folders with config.yaml) under {[str(r) for r in args.roots]} match")
    if args.sort:
        sign = 1 if "loss" in args.sort else -1
        runs.sort(key=lambda r: (args.sort not in r["metrics"], sign * r["metrics"].get(args.sort, math.nan)))
    rows = table(runs, args.keys or differing_keys(runs), args.metrics)
    print_table(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return rows


if __name__ == "__main__":
    main()
