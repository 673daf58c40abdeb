"""Every call that turns config into objects (or names into code) is listed here with where its config comes
from: this repository's composed config, never a value read from a checkpoint, a run folder or a download.

A new call site fails this test until it is added to CALL_SITES with its justification.
"""

import ast
from pathlib import Path

from tests.conftest import ROOT

# Calls that choose which Python callable runs from a name held in data.
LOADERS = {
    "instantiate", "_locate", "get_class", "get_method", "get_object", "import_module", "__import__",
    "eval", "exec", "instantiate_group", "instantiate_loggers", "instantiate_callbacks", "instantiate_trainer",
    "instantiate_node",
}  # fmt: skip

COMPOSED = "Hydra's composition of conf/ and the command line (train.py, eval.py, or compose_config in scripts)"
REBUILT = (
    "src.machinery.resume.stored_config.rebuild_run_config: "
    "conf/ with the checkpoint's checked choices and plain values"
)
# (file, enclosing function, called name, first argument) -> where that config comes from
CALL_SITES = {
    ("src/train.py", "build", "instantiate_node", "cfg.data"): COMPOSED,
    ("src/train.py", "build", "instantiate_node", "cfg.model"): COMPOSED,
    ("src/train.py", "build", "instantiate_loggers", 'cfg.get("logger")'): COMPOSED,
    ("src/train.py", "build", "instantiate_callbacks", 'cfg.get("callbacks")'): COMPOSED,
    ("src/train.py", "build", "instantiate_trainer", "cfg.trainer"): COMPOSED,
    ("src/eval.py", "load_module", "instantiate_node", "trained.model"): REBUILT,
    ("src/predict.py", "predict", "instantiate_node", "trained.data"): REBUILT,
    ("src/export/build.py", "load_run", "instantiate_node", "trained.model"): REBUILT,
    ("src/export/build.py", "load_run", "instantiate_node", "trained.data"): REBUILT,
    ("src/predict.py", "predict", "instantiate_group", 'cfg.get("callbacks")'): COMPOSED,
    ("src/predict.py", "predict", "instantiate_trainer", "cfg.trainer"): COMPOSED,
    ("src/eval.py", "evaluate", "instantiate_node", "data_cfg"): f"eval.py's data=... ({COMPOSED}), else {REBUILT}",
    ("src/eval.py", "evaluate", "instantiate_loggers", 'cfg.get("logger")'): COMPOSED,
    ("src/eval.py", "evaluate", "instantiate_group", 'cfg.get("callbacks")'): COMPOSED,
    ("src/eval.py", "evaluate", "instantiate_trainer", "cfg.trainer"): COMPOSED,
    (
        "src/machinery/config/instantiate.py",
        "instantiate_group",
        "instantiate_node",
        "node",
    ): "a node of the group its caller passes",
    ("src/machinery/config/instantiate.py", "instantiate_node", "instantiate", "node"): "the node its caller passes",
    ("src/machinery/config/instantiate.py", "instantiate_loggers", "instantiate_group", "group"): "its caller's group",
    (
        "src/machinery/config/instantiate.py",
        "instantiate_callbacks",
        "instantiate_group",
        "group",
    ): "its caller's group",
    (
        "src/machinery/config/instantiate.py",
        "instantiate_trainer",
        "instantiate_node",
        "trainer_cfg",
    ): "its caller's trainer node",
    ("scripts/benchmark.py", "pytorch_samples_per_s", "instantiate", "cfg.data"): COMPOSED,
    ("scripts/benchmark.py", "pytorch_samples_per_s", "instantiate", "cfg.model.net"): COMPOSED,
    ("scripts/benchmark.py", "pytorch_samples_per_s", "instantiate", "cfg.optimizer"): COMPOSED,
    ("scripts/benchmark.py", "pytorch_samples_per_s", "instantiate", "cfg.scheduler"): COMPOSED,
    ("scripts/benchmark.py", "configure_optimizers", "instantiate", "self.cfg.optimizer"): COMPOSED,
    ("scripts/benchmark.py", "configure_optimizers", "instantiate", "self.cfg.scheduler"): COMPOSED,
    ("scripts/benchmark.py", "lightning_defaults_samples_per_s", "instantiate", "cfg.model.net"): COMPOSED,
    ("scripts/benchmark.py", "lightning_defaults_samples_per_s", "instantiate", "cfg.data"): COMPOSED,
    (
        "scripts/digits_to_png.py",
        "write_digits",
        "instantiate",
        'compose_config("train", ["data=digits"], scratch).data',
    ): (COMPOSED),
}


def sources() -> list[Path]:
    return [ROOT / "train.py", ROOT / "eval.py", *sorted((ROOT / "src").rglob("*.py")),
            *sorted((ROOT / "scripts").glob("*.py"))]  # fmt: skip


def called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


class _LoaderCalls(ast.NodeVisitor):
    """Collects (file, innermost enclosing function or <module>, called name, first argument) of loader calls."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text, self.functions = file, text, ["<module>"]
        self.found: set[tuple[str, str, str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        # `layer.eval()` (no argument) is nn.Module's evaluation mode; Python's eval needs its source as an argument
        mode_switch = isinstance(node.func, ast.Attribute) and node.func.attr == "eval" and not node.args
        if (name := called_name(node)) in LOADERS and not mode_switch:
            first = ast.get_source_segment(self.text, node.args[0]) if node.args else ""
            self.found.add((self.file, self.functions[-1], name, first))
        self.generic_visit(node)


def call_sites() -> set[tuple[str, str, str, str]]:
    found = set()
    for path in sources():
        text = path.read_text()
        visitor = _LoaderCalls(str(path.relative_to(ROOT)), text)
        visitor.visit(ast.parse(text))
        found |= visitor.found
    return found


def test_every_call_that_turns_config_into_code_is_listed_and_justified():
    found = call_sites()
    assert found - CALL_SITES.keys() == set(), "a new call site: add it to CALL_SITES with where its config is from"
    assert CALL_SITES.keys() - found == set(), "a listed call site is gone: remove it from CALL_SITES"


def test_no_module_imports_code_by_name():
    for path in sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "importlib" not in names and "pydoc" not in names, f"{path}:{node.lineno}"


def test_eval_builds_only_from_the_rebuilt_config():
    """The config eval.py instantiates is rebuild_run_config's, never the checkpoint's run_config as stored."""
    text = (ROOT / "src" / "eval.py").read_text()
    assert 'return rebuild_run_config(checkpoint["run_config"], ckpt_path, data_dir=data_dir)' in text
    assert "OmegaConf.create(checkpoint" not in text
