"""The main window: a thin shell that builds the canvas, panels and actions and wires them.

Attributes other parts rely on: ``window.document`` (:class:`app.document.AnnotationDocument`),
``window.canvas`` (:class:`app.canvas.Canvas`), ``window.actions`` (:class:`app.actions.Actions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QMainWindow, QWidget

from app.canvas import Canvas
from app.document import AnnotationDocument
from rpn_core.annotations import ImageAnnotation
from rpn_core.imageio import ImageReadError, load_image

__all__ = ["MainWindow"]


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = AnnotationDocument(self)
        self.canvas = Canvas(self.document, self)
        self.setCentralWidget(self.canvas)
        self.resize(1280, 820)
        self.setWindowTitle("RPN Studio")

    def open_paths(self, paths: Sequence[str | Path], *, recursive: bool = False) -> None:
        path = Path(paths[0])
        try:
            loaded = load_image(path)
        except ImageReadError as exc:
            self.document.set_image(None, None, error=str(exc))
            return
        ann = ImageAnnotation(path, loaded.width, loaded.height)
        self.document.set_image(loaded, ann)
