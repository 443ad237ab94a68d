"""The package layers, checked on the source (every import, also those inside functions).

* ``rpn_core`` imports no Qt, no ``app`` and no ``resources``: the app passes it paths.
* In ``app``: ``common`` is the bottom; ``state`` may use ``common``; ``canvas`` may use
  ``common`` and ``state``; the feature packages (``annotate``, ``anchor_lab``,
  ``proposals``, ``training``) may use those three and never each other; only ``shell`` (and
  the entry point) wires features together.

ARCHITECTURE.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FEATURES = {"annotate", "anchor_lab", "proposals", "training"}
# app sub-package -> the app sub-packages it may import (besides itself and app._compat)
APP_ALLOWED = {
    "common": set(),
    "state": {"common"},
    "canvas": {"common", "state"},
    **{f: {"common", "state", "canvas"} for f in FEATURES},
    "shell": {"common", "state", "canvas", *FEATURES},
}
CORE_BANNED = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "app", "resources")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import statement in the file (relative ones resolved
    against the file's package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(path_root(path)).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base in ("app", "rpn_core"):  # "from app import shell" names sub-packages
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def path_root(path: Path) -> Path:
    """The folder above the top-level package ``path`` belongs to."""
    p = path.parent
    while (p / "__init__.py").exists():
        p = p.parent
    return p


def layer_violations(root: Path) -> list[str]:
    """Every import under ``root/rpn_core`` and ``root/app`` that breaks the layer rules."""
    bad = []
    for path in sorted((root / "rpn_core").rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in CORE_BANNED:
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    for path in sorted((root / "app").rglob("*.py")):
        parts = path.relative_to(root / "app").parts
        if len(parts) < 2:  # app/__init__, app/__main__, app/_compat: the entry point
            continue
        own = parts[0]
        allowed = APP_ALLOWED.get(own)
        if allowed is None:
            bad.append(f"{path.relative_to(root)}: package app.{own} is not in the layer map")
            continue
        for line, module in imported_modules(path):
            top = module.split(".")
            if top[0] != "app" or len(top) < 2 or top[1] in (own, "_compat"):
                continue
            if top[1] not in allowed:
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


def test_the_repository_keeps_its_layers():
    assert layer_violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in ("rpn_core", "app", "app/common", "app/proposals", "app/training", "app/shell"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_a_deliberate_violation_of_each_rule_is_caught(tmp_path):
    root = _tree(
        tmp_path,
        {
            "rpn_core/a.py": "def f():\n    from PySide6 import QtCore\n",
            "rpn_core/b.py": "import resources\n",
            "rpn_core/c.py": "from app.common import settings\n",
            "app/proposals/p.py": "from app.training import panel\n",
            "app/proposals/q.py": "from ..training.panel import X\n",
            "app/common/w.py": "from app.state import qdocument\n",
            "app/shell/ok.py": "from app.proposals import p\nfrom app.training import panel\n",
            "app/training/ok.py": "from app.common import settings\nfrom . import panel\n",
        },
    )
    bad = layer_violations(root)
    assert bad == [
        "rpn_core/a.py:2 imports PySide6",
        "rpn_core/b.py:1 imports resources",
        "rpn_core/c.py:1 imports app.common",
        "app/common/w.py:1 imports app.state",
        "app/proposals/p.py:1 imports app.training",
        "app/proposals/q.py:1 imports app.training.panel",
    ]
