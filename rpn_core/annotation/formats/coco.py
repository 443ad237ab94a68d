"""COCO detection JSON: one file for a folder, ``bbox = [x, y, w, h]`` in 0-based pixels.

COCO's ``[x, y, w, h]`` maps to :mod:`rpn_core.boxes` as ``x1 = x, y1 = y, x2 = x + w,
y2 = y + h`` (no shift: COCO's ``x, y`` is the continuous top-left corner). Images are matched
by ``file_name`` relative to the image folder (posix separators), falling back to the bare
name when that is unique (CVAT writes bare names). ``iscrowd = 1`` maps to ``difficult``
(both mean "ignore when scoring") and back; ``truncated`` is kept as
``attributes: {"truncated": true}`` (CVAT's place for per-box attributes).

Category ids are stable: existing categories keep their ids, a new label gets ``max id + 1``
(a numeric label that names an unknown id, as read from an annotation whose category is
missing, gets that id back). Unknown keys are kept: top level (``info``, ``licenses``...), each
image entry, and each annotation's own keys (``id``, ``segmentation``, ``attributes``...),
which ride on its box (``Box.extra["coco"]``): a relabelled, moved or resized box keeps its
annotation id and keys (``segmentation`` is kept as it was, not moved with the box; ``area`` is
the box's). A new box (drawn, pasted, duplicated) gets ``max id + 1``. Annotations that point
to unknown images are reported and written back as is.
"""

from __future__ import annotations

import copy
from array import array
from dataclasses import replace
from pathlib import Path, PurePosixPath

from rpn_core.annotation.data import AnnotationReadError, Box, ImageAnnotation
from rpn_core.annotation.formats._common import (
    checked_box,
    json_bytes,
    require_finite,
    to_float,
)
from rpn_core.annotation.formats.labelme import parse_json

__all__ = ["CocoDocument", "parse_coco"]

_OWN_ANN = {"bbox", "category_id", "image_id", "iscrowd", "area"}


def _int_id(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class CocoDocument:
    """A parsed COCO file: per-image boxes plus everything needed to write it back."""

    def __init__(self, path: str | Path, doc: dict | None = None) -> None:
        self.path = Path(path)
        self.doc: dict = doc if doc is not None else {}
        self.warnings: list[str] = []  # file-level problems (not tied to one image)
        self.images: list[dict] = []
        self.categories: list[dict] = []
        self.annotations: list[dict] = []
        self._image_warnings: dict[int, list[str]] = {}
        # Lazy indexes (a COCO file may hold 10^6 annotations). Positions are kept in arrays,
        # not as 10^6 int or tuple objects: the annotations' index is dropped after each
        # change, and freeing 10^6 small objects is one C call that holds the GIL (100 ms for
        # 750,000 tuples: a GUI freeze during a background save). The image index only grows.
        self._origin: array | None = None  # file index of each kept annotation
        self._by_image: dict[int, array] | None = None  # positions in self.annotations
        self._by_name: dict[str, dict] | None = None
        self._by_base: dict[str, list[dict]] = {}

    # -- reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        doc = self.doc
        for key in ("images", "annotations", "categories"):
            if key in doc and not isinstance(doc[key], list):
                raise AnnotationReadError(self.path, f"'{key}' is not a list", location=key)
        if "images" not in doc and "annotations" not in doc:
            raise AnnotationReadError(self.path, "no 'images' or 'annotations': not a COCO file")
        self.categories = self._clean("categories", ("id", "name"), str)
        self.images = self._clean("images", ("id", "file_name"), str)
        image_ids = {im["id"] for im in self.images}
        seen: set[int] = set()
        self._origin = array("q")
        for k, ann in enumerate(doc.get("annotations", [])):
            where = f"{self.path.name}: annotations[{k}]"
            if not isinstance(ann, dict):
                self.warnings.append(f"{where}: not an object; dropped")
                continue
            self.annotations.append(ann)
            self._origin.append(k)
            image_id = _int_id(ann.get("image_id"))
            if image_id is None or image_id not in image_ids:
                self.warnings.append(
                    f"{where}: unknown image_id {ann.get('image_id')!r}; kept, not shown"
                )
                continue
            ann_id = _int_id(ann.get("id"))
            if ann_id is None or ann_id in seen:
                what = "missing 'id'" if ann_id is None else f"duplicate id {ann_id}"
                self._image_warnings.setdefault(image_id, []).append(
                    f"{where}: {what}; a new id is given on save"
                )
            else:
                seen.add(ann_id)

    def _clean(self, key: str, required: tuple[str, str], name_type: type) -> list[dict]:
        out, ids = [], set()
        for k, entry in enumerate(self.doc.get(key, [])):
            where = f"{self.path.name}: {key}[{k}]"
            if not isinstance(entry, dict):
                self.warnings.append(f"{where}: not an object; dropped")
                continue
            missing = [r for r in required if r not in entry]
            if missing:
                self.warnings.append(f"{where}: missing {missing[0]!r}; dropped")
                continue
            entry_id = _int_id(entry["id"])
            if entry_id is None or not isinstance(entry[required[1]], name_type):
                self.warnings.append(f"{where}: 'id' or {required[1]!r} has a wrong type; dropped")
                continue
            if entry_id in ids:
                self.warnings.append(f"{where}: duplicate id {entry_id}; dropped")
                continue
            ids.add(entry_id)
            out.append(entry)
        return out

    # -- per-image access ------------------------------------------------------------------
    def _index(self) -> None:
        if self._by_name is None:
            self._by_name, self._by_base = {}, {}
            for im in self.images:
                self._index_image(im)
        if self._by_image is None:
            by_image: dict[int, array] = {}
            for pos, raw in enumerate(self.annotations):
                image_id = _int_id(raw.get("image_id"))
                if image_id is not None:
                    positions = by_image.get(image_id)
                    if positions is None:
                        positions = by_image[image_id] = array("q")
                    positions.append(pos)
            self._by_image = by_image

    def _index_image(self, im: dict) -> None:
        assert self._by_name is not None
        rel = _norm(im["file_name"])
        self._by_name.setdefault(rel, im)
        self._by_base.setdefault(PurePosixPath(rel).name, []).append(im)

    def _changed(self) -> None:
        """The annotations list changed: its index and file positions no longer hold."""
        self._by_image = None
        self._origin = None  # positions now refer to the in-memory list

    def find_image(self, image_rel: str) -> dict | None:
        """The image entry whose ``file_name`` is ``image_rel`` (or its unique bare name)."""
        self._index()
        assert self._by_name is not None
        rel = _norm(image_rel)
        if rel in self._by_name:
            return self._by_name[rel]
        same = self._by_base.get(PurePosixPath(rel).name, [])
        return same[0] if len(same) == 1 else None

    def annotation_for(
        self, image_rel: str, image_path: str | Path, width: int = 0, height: int = 0
    ) -> ImageAnnotation:
        """The boxes of one image (empty if the file does not list it)."""
        entry = self.find_image(image_rel)
        ann = ImageAnnotation(image_path, width, height)
        if entry is None:
            return ann
        fw, fh = _int_id(entry.get("width")), _int_id(entry.get("height"))
        if width and height and fw and fh and (fw, fh) != (width, height):
            ann.warnings.append(
                f"{self.path.name}: image {entry['id']} is listed as {fw}x{fh} but is"
                f" {width}x{height}; using the image"
            )
        if not (width and height) and fw and fh and fw > 0 and fh > 0:
            ann.width, ann.height = fw, fh
        ann.warnings.extend(self._image_warnings.get(entry["id"], []))
        names = {c["id"]: c["name"] for c in self.categories}
        assert self._by_image is not None
        for pos in self._by_image.get(entry["id"], ()):
            raw = self.annotations[pos]
            k = pos if self._origin is None else self._origin[pos]
            box = self._box(raw, f"{self.path.name}: annotations[{k}]", names, ann)
            if box is not None:
                own = {k2: v for k2, v in raw.items() if k2 not in _OWN_ANN}
                ann.boxes.append(replace(box, extra={"coco": own}) if own else box)
        return ann

    def _box(self, raw: dict, where: str, names: dict, ann: ImageAnnotation) -> Box | None:
        bbox = raw.get("bbox")
        values = [to_float(v) for v in bbox] if isinstance(bbox, list) else []
        if len(values) != 4 or any(v is None for v in values):
            ann.warnings.append(f"{where}: skipped, 'bbox' {bbox!r} is not 4 finite numbers")
            return None
        x, y, w, h = values  # type: ignore[misc]
        cat = raw.get("category_id")
        if _int_id(cat) in names:
            label = names[cat]
        else:
            label = "" if cat is None else str(cat)
            ann.warnings.append(f"{where}: unknown category_id {cat!r}; label {label!r}")
        crowd = raw.get("iscrowd") in (1, True)
        attributes = raw.get("attributes")
        truncated = isinstance(attributes, dict) and attributes.get("truncated") is True
        box = Box(x, y, x + w, y + h, label=label, difficult=crowd, truncated=truncated)
        return checked_box(box, ann.width, ann.height, where, ann.warnings)

    # -- writing ---------------------------------------------------------------------------
    def _category_id(self, label: str) -> int:
        for c in self.categories:
            if c["name"] == label:
                return c["id"]
        used = {c["id"] for c in self.categories}
        if label.isascii() and label.isdigit() and int(label) not in used:
            new_id = int(label)
        else:
            new_id = max(used, default=0) + 1
        self.categories.append({"id": new_id, "name": label, "supercategory": ""})
        return new_id

    def set_annotation(self, image_rel: str, ann: ImageAnnotation) -> None:
        """Replace the boxes of ``image_rel`` (adding its image entry if needed).

        Raises ``ValueError`` (before changing anything) for a box with a non-finite corner.
        """
        require_finite(ann)
        entry = self.find_image(image_rel)
        if entry is None:
            entry = {"id": max((im["id"] for im in self.images), default=0) + 1}
            entry["file_name"] = image_rel
            self.images.append(entry)
            if self._by_name is not None:
                self._index_image(entry)
        self._changed()
        self._image_warnings.pop(entry["id"], None)  # its entries are rewritten clean
        if ann.width and ann.height:
            entry["width"], entry["height"] = ann.width, ann.height
        self.annotations = [
            a for a in self.annotations if _int_id(a.get("image_id")) != entry["id"]
        ]
        # The ids the boxes would keep that another annotation already has, and the highest
        # id. A loop and a small set: a set of 10^6 ids would be built and resized, and
        # ``max`` run, in single C calls that hold the GIL for tens of milliseconds each.
        wanted = {_int_id(box.format_extra("coco", {}).get("id")) for box in ann.boxes}
        used: set[int] = set()
        top: int | None = None
        for a in self.annotations:
            a_id = _int_id(a.get("id"))
            if a_id is not None:
                if a_id in wanted:
                    used.add(a_id)
                if top is None or a_id > top:
                    top = a_id
        next_id = (0 if top is None else top) + 1
        for box in ann.boxes:
            raw = copy.deepcopy(box.format_extra("coco", {}))
            ann_id = _int_id(raw.get("id"))
            if ann_id is None or ann_id in used:
                ann_id = next_id
            used.add(ann_id)
            next_id = max(next_id, ann_id + 1)
            w, h = box.width, box.height
            raw.update(
                id=ann_id,
                image_id=entry["id"],
                category_id=self._category_id(box.label),
                bbox=[box.x1, box.y1, w, h],
                area=w * h,
                iscrowd=1 if box.difficult else 0,
            )
            raw.setdefault("segmentation", [])
            _set_truncated(raw, box.truncated)
            self.annotations.append(raw)

    def to_bytes(self) -> bytes:
        """The document as UTF-8 JSON (see
        :func:`~rpn_core.annotation.formats._common.json_bytes`)."""
        own = ("images", "annotations", "categories")
        out = {k: v for k, v in self.doc.items() if k not in own}
        out.setdefault("info", {"description": "written by RPN Studio"})
        out["images"] = self.images
        out["annotations"] = self.annotations
        out["categories"] = self.categories
        # No indent: json's C encoder only runs without it (10x faster on a 10^5-box file,
        # which autosave rewrites after each edit); COCO files are usually one line anyway.
        return json_bytes(out, indent=None)


def _set_truncated(raw: dict, truncated: bool) -> None:
    attributes = raw.get("attributes")
    if truncated:
        if not isinstance(attributes, dict):
            attributes = raw["attributes"] = {}
        attributes["truncated"] = True
    elif isinstance(attributes, dict):
        attributes.pop("truncated", None)


def _norm(file_name: str) -> str:
    return PurePosixPath(file_name.replace("\\", "/")).as_posix()


def parse_coco(data: bytes, *, path: str | Path) -> CocoDocument:
    """Parse COCO JSON bytes; malformed entries become warnings, an unparseable file or a wrong
    top-level type raises :class:`AnnotationReadError`."""
    path = Path(path)
    doc = parse_json(data, path)
    if not isinstance(doc, dict):
        raise AnnotationReadError(path, f"top level is a JSON {type(doc).__name__}, not an object")
    coco = CocoDocument(path, doc)
    coco._load()
    return coco
