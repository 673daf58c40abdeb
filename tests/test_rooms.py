"""The forker's rooms stay readable without the machinery: networks and the LightningModule import none of it, and
data sets only the base that serves their splits (`serving`) and the batched augmentations (`augment`)."""

import ast

import pytest

from src.machinery.config.schemas import ROOT

ALLOWED = {
    "src/models": set(),
    "src/module.py": set(),
    "src/data": {"src.machinery.serving.in_memory", "src.machinery.serving.augment"},
}


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


@pytest.mark.parametrize("room", ALLOWED)
def test_a_forkers_room_imports_no_machinery_but_what_serves_it(room):
    files = [ROOT / room] if room.endswith(".py") else sorted((ROOT / room).glob("*.py"))
    assert files
    for path in files:
        machinery = {m for m in imported_modules(path) if m.startswith("src.machinery")}
        assert machinery <= ALLOWED[room], f"{path.relative_to(ROOT)} imports {sorted(machinery - ALLOWED[room])}"
