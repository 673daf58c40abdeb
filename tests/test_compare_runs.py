"""scripts/compare_runs.py reads real run folders and shows what differed and what each reached."""

import sys

from src.train import train
from tests.conftest import FAST, ROOT, compose_config

sys.path.insert(0, str(ROOT / "scripts"))
import compare_runs


def test_compare_shows_the_differing_keys_and_final_metrics(tmp_path, capsys):
    results = {}
    for name, lr in (("a", 0.003), ("b", 0.0003)):
        cfg = compose_config("train", [*FAST, f"optimizer.lr={lr}", "group=cmp", "tags=[x]"], tmp_path / name)
        results[lr] = train(cfg)["test/acc"]
    rows = compare_runs.main([str(tmp_path), "--sort", "test/acc", "--group", "cmp", "--tag", "x"])
    header, *body = rows
    assert header[:3] == ["run", "group", "commit"] and "optimizer.lr" in header
    assert "paths.output_dir" not in header  # differs between any two runs: left out
    lr_col, acc_col = header.index("optimizer.lr"), header.index("test/acc")
    shown = {float(row[lr_col]): float(row[acc_col]) for row in body}
    assert shown == {lr: round(acc, 4) for lr, acc in results.items()}
    accs = [float(row[acc_col]) for row in body]
    assert accs == sorted(accs, reverse=True)  # best first
    assert "optimizer.lr" in capsys.readouterr().out
    assert compare_runs.main([str(tmp_path), "--group", "cmp", "--tag", "x", "--keys", "seed"])[0][3] == "seed"
