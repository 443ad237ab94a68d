"""The common YOLO dataset layout (Ultralytics, Roboflow exports): images and labels in sibling
trees, class names in a ``data.yaml``::

    dataset/
      data.yaml            names: [person, car]   (or a block list, or {0: person, 1: car})
      images/train/a.jpg
      labels/train/a.txt

:func:`labels_folder_for` maps an image folder to its label folder (the last ``images`` part
of the path replaced by ``labels``), :func:`find_data_yaml` finds the YAML file above it and
:func:`parse_yaml_names` reads its ``names`` -- a small, safe subset of YAML parsed here (no
code, no tags, no anchors: only the ``names`` key), so no YAML library is needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

__all__ = [
    "YAML_NAMES",
    "find_data_yaml",
    "labels_folder_for",
    "parse_yaml_names",
    "read_yaml_names",
]

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_MAX_YAML_BYTES = 1 << 20
_UP = 3  # parents of the image folder searched for data.yaml


def labels_folder_for(images_folder: str | Path) -> Path | None:
    """``.../images/<rest>`` -> ``.../labels/<rest>`` when that folder exists, else None."""
    folder = Path(images_folder)
    parts = folder.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].lower() == "images":
            name = "Labels" if parts[i] == "Images" else "labels"
            labels = Path(*parts[:i], name, *parts[i + 1 :])
            return labels if labels.is_dir() else None
    return None


def find_data_yaml(folder: str | Path) -> Path | None:
    """The first ``data.yaml`` (or ``dataset.yaml``...) in ``folder`` or up to three parents."""
    here = Path(folder)
    for candidate in [here, *list(here.parents)[:_UP]]:
        for name in YAML_NAMES:
            path = candidate / name
            if path.is_file():
                return path
    return None


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        if text[0] == '"':
            try:
                return str(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                return text[1:-1]
        return text[1:-1].replace("''", "'")
    return re.sub(r"\s+#.*$", "", text).strip()


def _split_flow(body: str) -> list[str]:
    """Items of a one-line flow collection body (``a, 'b, c', d``), quotes respected."""
    items, current, quote = [], "", ""
    for ch in body:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        items.append(current)
    return [i for i in (s.strip() for s in items) if i]


def parse_yaml_names(text: str) -> list[str]:
    """The class names of a YOLO ``data.yaml``: ``names:`` as a flow list (``[a, b]``), a block
    list (``- a``), a flow map or a block map of ``id: name`` (ordered by id). ``[]`` when
    there is no ``names`` key or it is in a form this subset does not read."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        rest = re.sub(r"\s+#.*$", "", m.group(1)).strip()
        if rest.startswith("[") and rest.endswith("]"):
            return [_scalar(s) for s in _split_flow(rest[1:-1])]
        if rest.startswith("{") and rest.endswith("}"):
            pairs = [s.split(":", 1) for s in _split_flow(rest[1:-1]) if ":" in s]
            return _by_id([(k, v) for k, v in pairs])
        if rest:
            return []
        block: list[str] = []
        for sub in lines[i + 1 :]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            if not sub[:1].isspace() and not sub.startswith("-"):
                break  # the next top-level key
            block.append(sub.strip())
        if block and all(b.startswith("-") for b in block):
            return [_scalar(b[1:]) for b in block]
        return _by_id([b.split(":", 1) for b in block if ":" in b])
    return []


def _by_id(pairs: list) -> list[str]:
    named: dict[int, str] = {}
    for key, value in pairs:
        try:
            named[int(_scalar(key))] = _scalar(value)
        except ValueError:
            return []
    return [named[k] for k in sorted(named)] if named else []


def read_yaml_names(path: str | Path) -> list[str]:
    """:func:`parse_yaml_names` of a file; ``[]`` if it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_YAML_BYTES)
        return parse_yaml_names(data.decode("utf-8", errors="replace"))
    except OSError:
        return []
