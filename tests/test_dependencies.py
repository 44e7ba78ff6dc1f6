"""Data flows one way, datasets -> preprocess -> cache -> train -> export, and so do the imports.

The rules (README.md, "Layout of the code"), checked on every import statement of the source,
those inside functions included:

- common/ (the error type, file writing, folder locks) is the ground: every stage may import it,
  and it imports no stage.
- kelly/ is the roof (the `kelly` command and `kelly pipeline`): no stage imports it.
- No circle: no two modules import each other, directly or through others.
- No module of a stage passes 500 lines.
- preprocess/ imports nothing from train/ or export/.
- train/ imports nothing from export/, and from preprocess/ only the cache's reading side (the
  shard reader, the row type and its layout, the input statistics) and the feature definition
  (`spec`, and the emotion embedding, whose formula is part of what the vectors mean).
- export/ imports from preprocess/ only the feature definition.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: what train/ may import from preprocess/
TRAIN_MAY_IMPORT = {
    "preprocess.cache.reader", "preprocess.cache.rows", "preprocess.cache.layout", "preprocess.cache.stats",
    "preprocess.features.spec", "preprocess.features.embedding",
}
#: what export/ may import from preprocess/
EXPORT_MAY_IMPORT = {"preprocess.features.spec", "preprocess.features.embedding"}
STAGES = ("common", "preprocess", "train", "export", "kelly", "bench")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in `path` names: ``from a.b import c`` gives ``a.b.c`` when
    a.b.c is a module or package of the repository, else ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                as_path = REPO / name.replace(".", "/")
                found.add(name if as_path.with_suffix(".py").is_file() or as_path.is_dir() else node.module)
    return {name for name in found if name.split(".")[0] in STAGES}


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_the_reader_of_imports_sees_every_kind_of_statement(tmp_path):
    module = tmp_path / "example.py"
    module.write_text("import preprocess.job\nfrom preprocess.cache import reader, manifest\n"
                      "from preprocess.features.spec import NETWORKS\n"
                      "def late():\n    from train.models import build\n")
    assert imported_modules(module) == {"preprocess.job", "preprocess.cache.reader", "preprocess.cache.manifest",
                                        "preprocess.features.spec", "train.models"}


def test_the_ground_imports_no_stage():
    for path in sources("common"):
        bad = {m for m in imported_modules(path) if not m.startswith("common")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_no_stage_imports_the_command_on_top():
    for folder in ("common", "preprocess", "train", "export"):
        for path in sources(folder):
            bad = {m for m in imported_modules(path) if m.split(".")[0] == "kelly"}
            assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_through_others():
    graph = {}
    for folder in ("common", "preprocess", "train", "export", "kelly"):
        for path in sources(folder):
            graph[module_name(path)] = imported_modules(path)
    known = set(graph)

    def targets(name):          # an imported name that is not a module is an object of its package
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    edges = {name: {targets(m) for m in modules} - {"", name} for name, modules in graph.items()}
    for name, first in edges.items():
        seen, todo = set(), list(first)
        while todo:
            nxt = todo.pop()
            if nxt == name:
                pytest.fail(f"{name} imports itself through {sorted(first)}")
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(edges.get(nxt, ()))


def test_preprocess_imports_nothing_downstream():
    for path in sources("preprocess"):
        bad = {m for m in imported_modules(path) if m.startswith(("train", "export"))}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_train_imports_only_the_cache_reader_and_the_feature_definition_from_preprocess():
    for path in sources("train"):
        modules = imported_modules(path)
        bad = {m for m in modules if m.startswith("export")
               or (m.startswith("preprocess") and m not in TRAIN_MAY_IMPORT)}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_export_imports_only_the_feature_definition_from_preprocess():
    for path in sources("export"):
        bad = {m for m in imported_modules(path) if m.startswith("preprocess") and m not in EXPORT_MAY_IMPORT}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


#: the most lines a module of a stage may hold: past it, it holds more than one idea and is split
MAX_MODULE_LINES = 500


def test_no_stage_module_is_over_500_lines():
    for folder in ("common", "preprocess", "train", "export", "kelly"):
        for path in sources(folder):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)}: {lines} lines"
