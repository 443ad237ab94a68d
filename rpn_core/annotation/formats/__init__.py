"""Annotation file formats (Pascal VOC, YOLO, COCO, labelme) behind one store interface.

Boxes in memory always follow :mod:`rpn_core.boxes`; each format module documents exactly how
its file convention maps to it (VOC's two conventions in :mod:`rpn_core.annotation.formats.voc`).
Readers
return an :class:`~rpn_core.annotation.data.ImageAnnotation` whose ``warnings`` name the file and
line/key of every skipped item, or raise :class:`~rpn_core.annotation.data.AnnotationReadError`
for a file that cannot be parsed at all -- never another exception type.

Use :func:`~rpn_core.annotation.formats.folder.open_store` (and ``detect_format`` there)
rather than the per-format functions: the store adds atomic writes, backups of damaged files and
the append-only class map.
"""
