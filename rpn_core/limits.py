"""Every input limit RPN Studio enforces, in one place (the README's limits table quotes these).

A limit is a promise in both directions: a file inside it is read, one outside it is refused
with a typed error that names the file and quotes the limit (never a ``MemoryError`` traceback
or a hang). Readers import the constant they enforce from here; nothing else defines a limit.
"""

from __future__ import annotations

__all__ = [
    "MAX_ANCHORS_PER_IMAGE",
    "MAX_ANNOTATION_BYTES",
    "MAX_CLASS_ID",
    "MAX_CLASS_MAP_BYTES",
    "MAX_COCO_BYTES",
    "MAX_DECODE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_SIDECAR_BYTES",
    "MAX_TRAIN_BOXES_PER_IMAGE",
    "MAX_WEIGHTS_BYTES",
    "DISPLAY_MAX_PIXELS",
    "describe_bytes",
]

# -- images ------------------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 400_000_000
"""Largest image (width x height, from the header) that is decoded at all: 400 MP, e.g.
20000 x 20000. Also the decompression-bomb guard (Pillow's own limit is set to it)."""

DISPLAY_MAX_PIXELS = 50_000_000
"""Images above 50 MP are decoded to a reduced display copy (boxes stay in original pixels)."""

MAX_DECODE_BYTES = 1024**3
"""Memory one decode may take at its peak (estimated from the header before decoding): 1 GiB.
JPEGs are reduced while decoding and large 8-bit PNGs are decoded in strips, so both always
fit up to :data:`MAX_IMAGE_PIXELS`; other formats (TIFF, BMP, WebP, 16-bit PNG...) are
decoded whole, which fits up to about 150 MP RGB."""

# -- annotation files --------------------------------------------------------------------------
MAX_ANNOTATION_BYTES = 64 * 1024**2
"""Largest per-image annotation file (VOC XML, YOLO txt, labelme JSON): 64 MiB (a VOC file of
200,000 objects is about 40 MiB)."""

MAX_COCO_BYTES = 1024**3
"""Largest COCO file (one file for a whole folder): 1 GiB."""

MAX_CLASS_MAP_BYTES = 16 * 1024**2
"""Largest YOLO ``classes.txt`` / ``obj.names``: 16 MiB."""

MAX_CLASS_ID = 99_999
"""Largest YOLO class id read or written (100,000 classes). A larger id is refused with a
message: writing it would pad ``classes.txt`` with placeholder names up to that id."""

# -- training ----------------------------------------------------------------------------------
MAX_TRAIN_BOXES_PER_IMAGE = 1_000
"""Boxes of one image used by training: the anchor-labelling IoU matrix is anchors x boxes
(the embedded two-level model at its largest input: 86,184 anchors; labelling 2,000 boxes
peaked at 1.3 GB, 1,000 at about half that); an image with more is trained on its first
1,000 boxes and the cap is reported."""

MAX_ANCHORS_PER_IMAGE = 400_000
"""Anchors a model may tile over its largest input (``min_side x max_side``, every level):
4.6 times the embedded model's 86,184. A configuration asking for more (a weights file's,
or an anchor set from the lab) is refused with the count: labelling its anchors against
:data:`MAX_TRAIN_BOXES_PER_IMAGE` boxes would take several GB."""

# -- weights -----------------------------------------------------------------------------------
MAX_WEIGHTS_BYTES = 2 * 1024**3
"""Largest ``.safetensors`` weights file read (the embedded RPN is about 10 MB)."""

MAX_SIDECAR_BYTES = 16 * 1024**2
"""Largest JSON sidecar beside a weights file."""


def describe_bytes(n: int) -> str:
    """``64 MiB``, ``1.5 GiB``, ``512 bytes``: sizes as the messages quote them."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
