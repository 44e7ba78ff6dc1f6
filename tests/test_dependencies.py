"""Data flows one way, datasets -> preprocess -> cache -> train -> export, and so do the imports.

The rules (README.md, "Layout of the code"), checked on every import statement of the source,
those inside functions included:

- kelly/errors.py and kelly/files.py, which every stage imports, import no stage.
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
STAGES = ("preprocess", "train", "export", "kelly", "bench")


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


@pytest.mark.parametrize("path", ["kelly/errors.py", "kelly/files.py"])
def test_what_every_stage_imports_imports_no_stage(path):
    assert imported_modules(REPO / path) <= {"kelly.errors"}


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
