"""Compare finished runs side by side: what differed, what each reached, and their learning curves.

    python scripts/compare_runs.py                                   # every run under outputs/ and multirun/
    python scripts/compare_runs.py multirun/2026-11-25_19-02-11 --metric test/acc --plot curves.png
    python scripts/compare_runs.py outputs --group digits_cnn --tags cnn --keys optimizer.lr model.net.dropout
    python scripts/compare_runs.py multirun/<learning curve sweep> --x data.train_fraction --plot lc.png
    python scripts/compare_runs.py --wandb my-team/dl-template --group 2026-11-25_19-02-11   # online runs
    python scripts/compare_runs.py multirun/<seed sweep> --group-by model.net.dropout choices.model --plot bars.png

Local runs are read from their folders (works offline): `config.yaml` (resolved, with the git commit) and
`csv/metrics.csv`. The table shows the config keys whose values differ between the runs (or `--keys`), the
code's commit (`*` when the tree was dirty), each run's final value of every metric asked for and the best value
of `--metric` (highest; lowest for a loss), best run first. `--plot FILE` draws `--metric` against the step for
every run in one chart; with `--x KEY` it draws the final `--metric` (default test/acc) against that config value
instead. `--wandb ENTITY/PROJECT` reads the same from the W&B API (filtered by `--group` and `--tags`).

`--group-by KEY ...` pools the runs that share those config values (whatever else differs: the seed, the fold)
into one row each: n runs, and the mean ± sample standard deviation of every metric, best mean first; the CSV
has a mean and a std column per metric, and `--plot` draws the group means as bars (against `--x`: as lines)
with the standard deviation as error bars.

Run folders may come from elsewhere: what is printed has its control characters removed, CSV cells that a
spreadsheet would run as a formula are quoted, and every file read is bounded before it is used: a config.yaml with
YAML aliases, over `--max-mib` MiB, `--max-yaml-nodes` nodes or `--max-yaml-depth` levels, and a metrics.csv over
`--max-mib` MiB or `--max-cells` cells are refused in one line that names the file, its value and the bound (raise
the bound when you trust the folder); anything but a regular file is skipped.
"""

import argparse
import csv
import io
import math
import os
import re
import stat
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.machinery.config.plain_yaml import MAX_DEPTH, MAX_NODES, PlainYamlError, read_plain_yaml  # noqa: E402
from src.machinery.runs.folder import csv_cell  # noqa: E402

# Keys that differ between any two runs without saying anything about them.
NOISE = (
    "paths.", "hydra.", "run_name", "callbacks.model_checkpoint.dirpath", "callbacks.last_checkpoint.dirpath",
    "callbacks.energy.out_dir",
    "callbacks.test_figures.out_dir", "logger.", "trainer.default_root_dir", "git.", "params.", "hardware.",
    "launch.command",
)  # fmt: skip
SHOWN = ("group",)  # has its own column
CHOICE = "choices."  # the run record's config-group options: choices.model = rnn
DEFAULT_METRICS = ["val/acc", "test/acc", "test/loss"]

History = dict[str, list[tuple[float, float]]]  # metric -> [(step, value), ...] in logging order
# Bounds on what is read from a run folder (each raised by its flag): a run's config.yaml is kilobytes with a few
# hundred nodes under 10 levels; its metrics.csv a few MiB of at most a few hundred thousand cells.
MAX_MIB = 16  # --max-mib: each file
MAX_CELLS = 5_000_000  # --max-cells: a metrics.csv's cells (about 100 bytes each kept: 0.5 GB at the bound)
YAML_DEPTH_LIMIT = 256  # --max-yaml-depth may go this far, no further: the parser recurses at every level
# Terminal escape sequences (CSI, OSC), then any other control or bidirectional-override character.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without terminal escape sequences or control characters (a run folder's values are not trusted)."""
    return CONTROL.sub("?", ESCAPES.sub("", text))


def refuse(path: Path, problem: str, remedy: str = "rewrite the file as plain data") -> SystemExit:
    """One line naming the file and the problem, and what to do if the file is trusted (exit 1)."""
    return SystemExit(
        f"Error: {printable(str(path))}: {problem}; refused (leave that folder out, or if you trust it, {remedy})"
    )


def open_bounded(path: Path, max_mib: float) -> io.TextIOWrapper | None:
    """`path` open for reading as text, or None (with one warning line) when it is not a regular file (a FIFO would
    block the read for ever); refused when over `max_mib` MiB. Opened before it is checked: what is read is what
    was checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise refuse(path, f"unreadable ({error.strerror})", "make it readable") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return skipped(path)
    if info.st_size > max_mib * (1 << 20):
        os.close(fd)
        raise refuse(path, f"{info.st_size:,} bytes, over the bound of {max_mib:g} MiB", "raise it: --max-mib N")
    return open(fd, errors="replace", newline="")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def read_history(metrics_csv: Path, max_mib: float = MAX_MIB, max_cells: int = MAX_CELLS) -> History:
    """Every logged value of every metric in a Lightning CSVLogger file, with its step (within the bounds)."""
    history: History = {}
    if not metrics_csv.exists() or (f := open_bounded(metrics_csv, max_mib)) is None:
        return history
    cells = 0
    try:
        with f:
            for row in csv.reader(f):  # rows as lists: a header of a million columns makes no dict per row
                if cells == 0:
                    header = row
                    step_at = header.index("step") if "step" in header else None
                    columns = [(i, key) for i, key in enumerate(header) if key not in ("epoch", "step")]
                cells += len(row)
                if cells > max_cells:
                    raise refuse(metrics_csv, f"over {max_cells:,} cells (the bound)", "raise it: --max-cells N")
                if row is header:
                    continue
                step = float(row[step_at] or "nan") if step_at is not None and step_at < len(row) else math.nan
                for i, key in columns:
                    if i < len(row) and row[i] != "":
                        history.setdefault(key, []).append((step, float(row[i])))
    except (csv.Error, ValueError, TypeError) as error:
        raise refuse(metrics_csv, f"not a metrics CSV ({printable(str(error))[:200]})") from None
    return history


def final(history: History, metric: str) -> float | None:
    values = history.get(metric)
    return values[-1][1] if values else None


def best(history: History, metric: str) -> float | None:
    """The best value logged: the lowest for a loss, the highest otherwise."""
    values = [v for _, v in history.get(metric, [])]
    if not values:
        return None
    return min(values) if "loss" in metric else max(values)


def skipped(path: Path) -> None:
    """One warning line: `path` is not a regular file and is not read."""
    print(f"Warning: {printable(str(path))} is not a regular file (a FIFO, socket or device): skipped", file=sys.stderr)


def is_regular_config(path: Path) -> bool:
    """True for a regular file; a FIFO, socket or device (opening one can block) gets one warning line and False."""
    return stat.S_ISREG(path.lstat().st_mode) or bool(skipped(path))


def find_runs(roots: list[Path]) -> list[Path]:
    """Folders under `roots` (run folders or sweep folders) that hold a run's config.yaml (a regular file)."""
    configs = [p for root in roots for p in root.rglob("config.yaml") if not p.is_symlink()]
    found = {p.parent for p in configs if not any(part.startswith(".") or part == "wandb" for part in p.parent.parts)}
    return sorted(f for f in found if is_regular_config(f / "config.yaml"))


def load_run(folder: Path, bounds: argparse.Namespace | None = None) -> dict[str, Any]:
    """A run folder's config and metrics, each read within `bounds` (`--max-*`; the defaults without)."""
    bounds = bounds or parse_args([])
    path = folder / "config.yaml"
    try:
        config = read_plain_yaml(path, int(bounds.max_mib * (1 << 20)), bounds.max_yaml_nodes, bounds.max_yaml_depth)
        config = config or {}
    except PlainYamlError as error:
        remedy = {"bytes": "raise it: --max-mib N", "nodes": "raise it: --max-yaml-nodes N",
                  "depth": f"raise it: --max-yaml-depth N (at most {YAML_DEPTH_LIMIT})"}  # fmt: skip
        how = remedy.get(error.bound, "rewrite the file as plain data")
        raise refuse(path, f"not plain YAML ({printable(str(error))[:200]})", how) from None
    if not isinstance(config, dict):
        raise refuse(path, "not a mapping of config keys")
    history = read_history(folder / "csv" / "metrics.csv", bounds.max_mib, bounds.max_cells)
    return _run(str(folder), config, history, config.get("tags") or [])


def _run(name: str, config: dict, history: History, tags: list[str]) -> dict[str, Any]:
    git = config.get("git") or {}
    commit = (git.get("commit") or "-")[:8] + ("*" if git.get("dirty") else "")
    return {"name": name, "config": flatten(config), "history": history, "commit": commit,
            "group": config.get("group"), "tags": list(tags)}  # fmt: skip


def wandb_api() -> Any:
    """W&B's public API client (needs the network and `wandb login` or WANDB_API_KEY)."""
    import wandb

    return wandb.Api()


def load_wandb_runs(path: str, group: str | None, tags: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """The runs of W&B project `path` ("entity/project") in `group` with all `tags`, from the W&B API."""
    api = wandb_api()
    filters: dict[str, Any] = {}
    if group:
        filters["group"] = group
    if tags:
        filters["$and"] = [{"tags": {"$in": [tag]}} for tag in tags]
    runs = []
    for run in api.runs(path, filters=filters):
        history: History = {}
        for metric in metrics:
            rows = run.scan_history(keys=["_step", metric])
            history[metric] = [(float(r["_step"]), float(r[metric])) for r in rows if r.get(metric) is not None]
            if not history[metric] and isinstance(run.summary.get(metric), (int, float)):
                history[metric] = [(math.nan, float(run.summary[metric]))]
        config = {**dict(run.config), "group": run.group}
        runs.append(_run(f"{run.name} ({run.id})", config, history, run.tags))
    return runs


def differing_keys(runs: list[dict]) -> list[str]:
    """Config keys whose values differ between runs. Where a config group's option differs (`choices.model`:
    cnn, rnn), that one column stands for all the group's keys (`model.net.*` would differ anyway)."""
    keys = sorted({k for run in runs for k in run["config"]})
    differ = [
        k for k in keys
        if not k.startswith(NOISE) and k not in SHOWN and len({repr(run["config"].get(k)) for run in runs}) > 1
    ]  # fmt: skip
    swapped = tuple(f"{k.removeprefix(CHOICE)}." for k in differ if k.startswith(CHOICE))
    return [k for k in differ if not k.startswith(swapped)] if swapped else differ


def column_name(key: str) -> str:
    """`choices.model` is shown as `model`."""
    return key.removeprefix(CHOICE)


Column = tuple[str, Callable[[History], float | None]]  # a table's value column: its name and how a run gives it


def value_columns(runs: list[dict], metrics: list[str], best_of: str) -> list[Column]:
    """The final value of each metric, and the best of `best_of` where it has a curve (test/acc: one value, no best)."""
    has_curve = any(len(run["history"].get(best_of, [])) > 1 for run in runs)
    columns: list[Column] = [(m, lambda history, m=m: final(history, m)) for m in metrics]
    return columns + [(f"best {best_of}", lambda history: best(history, best_of))] * has_curve


def table(runs: list[dict], keys: list[str], metrics: list[str], best_of: str) -> list[list[str]]:
    """Header and one row per run: name, group, commit, config keys, final metrics, best of `best_of` (if a curve)."""
    columns = value_columns(runs, metrics, best_of)
    rows = [["run", "group", "commit", *map(column_name, keys), *(name for name, _ in columns)]]
    for run in runs:
        cells = [run["name"], str(run["group"] or ""), run["commit"]]
        cells += [str(run["config"].get(k, "")) for k in keys]
        values = [value_of(run["history"]) for _, value_of in columns]
        cells += ["" if v is None else f"{v:.4f}" for v in values]
        rows.append(cells)
    return rows


def config_key(runs: list[dict], key: str, option: str = "--group-by") -> str:
    """`key` as the runs' config holds it (`model` is `choices.model`); one clear error when no run has it."""
    for candidate in (key, CHOICE + key):
        if any(candidate in run["config"] for run in runs):
            return candidate
    differ = ", ".join(map(column_name, differing_keys(runs))) or "none"
    raise SystemExit(f"Error: {option} {printable(key)}: no run has this config key (keys that differ here: {differ})")


def check_metric(runs: list[dict], metric: str, option: str) -> None:
    """One clear error when no run logged `metric` (its column would be blank)."""
    if not any(run["history"].get(metric) for run in runs):
        logged = ", ".join(sorted({m for run in runs for m, values in run["history"].items() if values})) or "none"
        raise SystemExit(f"Error: {option} {printable(metric)}: no run logged this metric (metrics logged here: "
                         f"{printable(logged)})")  # fmt: skip


def ranked_groups(runs: list[dict], keys: list[str], best_of: str) -> list[tuple[tuple[str, ...], list[dict]]]:
    """The runs grouped by their values of `keys`, best mean of `best_of` first (highest; lowest for a loss)."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(str(run["config"].get(k, "")) for k in keys), []).append(run)
    sign = 1 if "loss" in best_of else -1

    def rank(group: tuple[tuple[str, ...], list[dict]]) -> tuple[bool, float]:
        mean, _ = mean_std([v for run in group[1] if (v := best(run["history"], best_of)) is not None])
        return mean is None, sign * (mean or 0.0)

    return sorted(groups.items(), key=rank)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1; None for fewer than two values)."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def grouped_table(
    ranked: list[tuple[tuple[str, ...], list[dict]]], keys: list[str], metrics: list[str], best_of: str
) -> list[list[str]]:
    """Header and one row per group of `ranked_groups`: the keys' values, n, and each column's mean and std."""
    columns = value_columns([run for _, members in ranked for run in members], metrics, best_of)
    rows = [[*map(column_name, keys), "n", *(f"{name} {stat}" for name, _ in columns for stat in ("mean", "std"))]]
    for values, members in ranked:
        cells = [*values, str(len(members))]
        for _, value_of in columns:
            stats = mean_std([v for run in members if (v := value_of(run["history"])) is not None])
            cells += ["" if v is None else f"{v:.4f}" for v in stats]
        rows.append(cells)
    return rows


def plus_minus(rows: list[list[str]]) -> list[list[str]]:
    """A grouped table as printed: each metric's mean and std columns as one `mean ± std` column."""
    header = rows[0]
    first = next(i for i, name in enumerate(header) if name.endswith(" mean"))
    merged = [header[:first] + [name.removesuffix(" mean") for name in header[first::2]]]
    for row in rows[1:]:
        pairs = zip(row[first::2], row[first + 1 :: 2], strict=True)
        merged.append(row[:first] + [f"{m} ± {s}" if s else m for m, s in pairs])
    return merged


def print_table(rows: list[list[str]]) -> None:
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def sort_key(metric: str, value_of: Any) -> Any:
    """Best first (highest; lowest for a loss); runs without the metric last."""
    sign = 1 if "loss" in metric else -1

    def key(run: dict) -> tuple[bool, float]:
        value = value_of(run["history"], metric)
        return value is None, sign * (value if value is not None else 0.0)

    return key


def plot_curves(runs: list[dict], metric: str, labels: list[str], path: Path) -> Path:
    """`metric` against the step, one line per run, in one chart."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for run, label in zip(runs, labels, strict=True):
        points = run["history"].get(metric, [])
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o", markersize=3, label=label)
    ax.set(xlabel="step", ylabel=metric, title=f"{metric} of {len(runs)} runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path


def plot_against(runs: list[dict], key: str, metric: str, path: Path, groups: dict[str, list[dict]]) -> Path:
    """Final `metric` against config value `key` (e.g. test/acc against data.train_fraction), one line per group:
    the mean of the repeats at each value, their standard deviation as error bars, and each repeat as a dot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for label, members in groups.items():
        by_x: dict[float, list[float]] = {}
        for run in members:
            x, y = run["config"].get(key), final(run["history"], metric)
            if x is not None and y is not None:
                by_x.setdefault(float(x), []).append(y)
        xs = sorted(by_x)
        stats = [mean_std(by_x[x]) for x in xs]
        bars = ax.errorbar(xs, [m for m, _ in stats], yerr=[s or 0 for _, s in stats], marker="o", capsize=3)
        bars.set_label(label)
        for x in xs:
            ax.scatter([x] * len(by_x[x]), by_x[x], color=bars.lines[0].get_color(), s=10, alpha=0.5)
    if not ax.lines:
        raise SystemExit(f"No run has both config key {key!r} and metric {metric!r}")
    ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key} ({len(runs)} runs, mean ± std)")
    ax.grid(alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path


def plot_groups(groups: dict[str, list[dict]], metrics: list[str], xlabel: str, path: Path) -> Path:
    """The mean final value of each metric per group of runs as bars (one panel per metric), std as error bars."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.7 * len(groups) + 2), 2.5 * len(metrics) + 1), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        stats = [
            mean_std([v for r in runs if (v := final(r["history"], metric)) is not None]) for runs in groups.values()
        ]
        means = [math.nan if m is None else m for m, _ in stats]
        ax.bar(range(len(groups)), means, yerr=[s or 0 for _, s in stats], capsize=3, color="tab:blue", alpha=0.8)
        ax.set(ylabel=metric, xticks=[])
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(groups)), list(groups), rotation=30, ha="right", fontsize=8)
    axes[-1].set_xlabel(printable(xlabel))
    n = sum(len(runs) for runs in groups.values())
    fig.suptitle(f"mean ± sample std over the runs of each group ({n} runs, {len(groups)} groups)", fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="*", type=Path, help="run folders or sweep folders (default: outputs multirun)")
    p.add_argument("--group", help="only runs of this group (W&B group; a sweep's folder name by default)")
    p.add_argument("--tags", "--tag", nargs="+", action="extend", default=[], help="only runs with all these tags")
    p.add_argument("--keys", nargs="+", help="config keys to show (default: those that differ)")
    p.add_argument("--metrics", nargs="+", help=f"final values to show (default: {' '.join(DEFAULT_METRICS)})")
    p.add_argument("--metric", "--sort", help="sort by (best first), show the best of, and plot this metric "
                   "(default: val/acc; test/acc with --x)")  # fmt: skip
    p.add_argument("--plot", type=Path, help="write a chart to this PNG file")
    p.add_argument("--x", help="with --plot: the final --metric against this config key (e.g. data.train_fraction)")
    p.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    p.add_argument("--group-by", nargs="+", metavar="KEY", help="one row per value of these config keys "
                   "(model.net.dropout choices.model): mean ± std over the runs sharing them")  # fmt: skip
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API instead of folders")
    bounds = p.add_argument_group("bounds on what is read from a run folder (raise them for folders you trust)")
    bounds.add_argument("--max-mib", type=float, default=MAX_MIB, help=f"each file's size (default {MAX_MIB})")
    bounds.add_argument("--max-cells", type=int, default=MAX_CELLS, help=f"a metrics.csv's cells (default {MAX_CELLS})")
    bounds.add_argument("--max-yaml-nodes", type=int, default=MAX_NODES, help=f"config.yaml's (default {MAX_NODES})")
    bounds.add_argument(
        "--max-yaml-depth",
        type=int,
        default=MAX_DEPTH,
        choices=range(1, YAML_DEPTH_LIMIT + 1),
        metavar="N",
        help=f"config.yaml's nesting (default {MAX_DEPTH}, at most {YAML_DEPTH_LIMIT})",
    )
    args = p.parse_args(argv)
    args.asked = [("--metric", args.metric)] * bool(args.metric) + [("--metrics", m) for m in args.metrics or []]
    args.metric = args.metric or ("test/acc" if args.x else "val/acc")
    args.metrics = args.metrics or list(dict.fromkeys([*DEFAULT_METRICS, args.metric]))
    if args.x and not args.plot:
        args.plot = Path(f"{args.metric.replace('/', '_')}_vs_{args.x}.png")
    if args.plot:
        from matplotlib.backend_bases import FigureCanvasBase

        if (formats := FigureCanvasBase.get_supported_filetypes()).get(args.plot.suffix.lower()[1:]) is None:
            raise SystemExit(f"Error: --plot {printable(str(args.plot))}: not a chart format; end it in one of "
                             f"{', '.join('.' + suffix for suffix in sorted(formats))}")  # fmt: skip
    return args


def load_runs(args: argparse.Namespace) -> list[dict]:
    if args.wandb:
        runs = load_wandb_runs(args.wandb, args.group, args.tags, [*args.metrics, args.metric])
    else:
        roots = args.roots or [Path("outputs"), Path("multirun")]
        runs = [load_run(folder, args) for folder in find_runs([r for r in roots if r.exists()])]
    runs = [r for r in runs if (args.group is None or r["group"] == args.group) and set(args.tags) <= set(r["tags"])]
    if not runs:
        raise SystemExit(f"No runs match in {args.wandb or [str(r) for r in args.roots or ['outputs', 'multirun']]}")
    return runs


def check_output_file(path: Path, option: str, runs: list[dict]) -> None:
    """`--csv`/`--plot` may replace an earlier table or chart (a regular file), never a run's own files, a link, a
    folder or a pipe (which would hang the write)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file"
        raise SystemExit(f"Error: {option} {printable(str(path))} is {kind}: name a new file or a regular one")
    target = path.resolve()
    for folder in (Path(run["name"]).resolve() for run in runs if Path(run["name"]).is_dir()):
        if target.is_relative_to(folder):
            raise SystemExit(
                f"Error: {option} {printable(str(path))} is inside the run folder {printable(str(folder))}, whose "
                "files are the run's own: write it outside the run folders"
            )


def write_table_csv(rows: list[list[str]], path: Path) -> None:
    """The table as CSV, written whole to a temporary file and then renamed over `path` (a second run replaces the
    first one's table; a failure halfway leaves the old one)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as f:
        csv.writer(f).writerows([[csv_cell(printable(cell)) for cell in row] for row in rows])
    temporary.replace(path)
    print(f"Table written to {path}")


def label(run: dict, keys: list[str], width: int | None = 60) -> str:
    """`key=value ...` for a legend, cut to `width` characters (the run's name when there are no keys)."""
    return printable(" ".join(f"{column_name(k)}={run['config'].get(k)}" for k in keys)[:width] or run["name"])


def main(argv: list[str] | None = None) -> list[list[str]]:
    args = parse_args(argv)
    runs = load_runs(args)
    for option, metric in args.asked:
        check_metric(runs, metric, option)
    args.x = args.x and config_key(runs, args.x, "--x")
    keys = [config_key(runs, key, "--keys") for key in args.keys] if args.keys else differing_keys(runs)
    if args.x:
        runs.sort(key=lambda r: (r["config"].get(args.x) is None, r["config"].get(args.x) or 0))
    else:
        runs.sort(key=sort_key(args.metric, best))
    groups = {"": runs}
    if args.group_by:
        by = [config_key(runs, key) for key in args.group_by]
        ranked = ranked_groups(runs, by, args.metric)
        groups = {label(members[0], by, None): members for _, members in ranked}
        rows = grouped_table(ranked, by, args.metrics, args.metric)
        pooled = [column_name(k) for k in differing_keys(runs) if k not in by]
        print(
            f"{len(runs)} runs in {len(groups)} groups; a group pools runs that differ in: {', '.join(pooled) or '-'}"
        )
        print_table(plus_minus(rows))
    else:
        rows = table(runs, keys, args.metrics, args.metric)
        print_table(rows)
    for option, path in (("--csv", args.csv), ("--plot", args.plot)):  # written into new folders too
        if path:
            check_output_file(path, option, runs)
            path.parent.mkdir(parents=True, exist_ok=True)
    if args.csv:
        write_table_csv(rows, args.csv)
    if args.plot:
        if args.x:
            plot_against(runs, args.x, args.metric, args.plot, groups)
        elif args.group_by:
            bars = {printable(" / ".join(values)): members for values, members in ranked}
            plot_groups(bars, args.metrics, " / ".join(map(column_name, by)), args.plot)
        else:
            plot_curves(runs, args.metric, [label(run, keys) for run in runs], args.plot)
        print(f"Chart written to {args.plot}")
    return rows


if __name__ == "__main__":
    main()
