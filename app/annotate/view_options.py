"""View ▸ Show Boxes, Show Box Labels and the display-only image adjustments.

Show Boxes off hides the GT boxes (and their tags and handles) to see the image, anchors and
proposals beneath. Hidden boxes are never edited: hiding them clears the selection and leaves
draw mode, the canvas picks no hidden box (:meth:`app.canvas.canvas.Canvas.set_box_visibility`), and
anything that selects boxes or starts drawing a box (W, Ctrl+A, paste, the Boxes list,
accepting proposals...) shows them again first. Both toggles persist in the settings.

Brighter / Darker / More / Less Contrast change only the pixmap the canvas shows: one lookup
table (:class:`rpn_core.images.adjust.ImageAdjustment`) is applied once per change or per new
image, never per paint. ``document.qimage``, ``document.loaded.pixels`` (what the RPN and the
pixel readout read) and the file stay as decoded. The adjustment carries over to the next image
(labelImg's behaviour) for this session; Reset returns to the original pixels.
"""

from __future__ import annotations

import sys

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QMainWindow

from rpn_core.images.adjust import ImageAdjustment

__all__ = ["DisplayOptions", "adjusted_qimage"]

_ALPHA = 3 if sys.byteorder == "little" else 0  # byte of 0xffRRGGBB that holds the 0xff


def _bytes(image: QImage, writable: bool = False) -> np.ndarray:
    """An ``(H, W, 4)`` uint8 view of a 32-bit image's memory (no copy)."""
    h, w = image.height(), image.width()
    buf = image.bits() if writable else image.constBits()
    rows = np.frombuffer(buf, np.uint8, count=image.sizeInBytes()).reshape(h, -1)
    return rows[:, : 4 * w].reshape(h, w, 4)


def adjusted_qimage(image: QImage, lut: np.ndarray) -> QImage:
    """A new RGB32 image: ``lut`` applied to R, G and B of ``image`` (which is not changed).
    One ``cv2.LUT`` pass over the bytes: ~25 ms for a 4000 x 3000 image."""
    import cv2  # only once the user adjusts the view: not part of the start-up

    src = image.convertToFormat(QImage.Format.Format_RGB32)  # shared, not copied, if RGB32
    out = QImage(src.size(), QImage.Format.Format_RGB32)
    if src.isNull():
        return out
    lut4 = np.repeat(lut.astype(np.uint8)[:, None], 4, axis=1)
    lut4[:, _ALPHA] = np.arange(256)  # RGB32 needs its 0xff byte kept
    dst = _bytes(out, writable=True)
    result = cv2.LUT(_bytes(src), lut4.reshape(1, 256, 4), dst=dst)
    if not np.shares_memory(result, dst):  # cv2 allocated its own output after all
        dst[...] = result
    return out


class DisplayOptions(QObject):
    """Puts the display actions in ``window``'s View menu and wires them (to its ``canvas``,
    ``document``, ``settings`` and status bar). Create it after the canvas: its slot for
    ``document.image_changed`` must run after the canvas's, which shows the new pixmap."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.canvas, self.document, self.settings = window.canvas, window.document, window.settings
        self.actions = a = window.actions
        view = window.menus["view"]  # after zoom, before the docks' toggles
        view.addActions([a.show_boxes, a.show_labels])
        view.addSeparator()
        view.addActions([a.brighter, a.darker, a.more_contrast, a.less_contrast])
        view.addAction(a.reset_adjustments)
        view.addSeparator()
        self.adjustment = ImageAdjustment()
        self._status = window.statusBar()
        self.adjust_label = QLabel()  # says the view is adjusted, also after image changes
        self.adjust_label.setVisible(False)
        self.adjust_label.setContentsMargins(0, 0, 10, 0)
        self.adjust_label.setToolTip("Display only: the file and the RPN's input are unchanged")
        self._status.addPermanentWidget(self.adjust_label)
        a.show_boxes.setChecked(self.settings.show_boxes)
        a.show_labels.setChecked(self.settings.show_labels)
        self._apply_visibility()
        a.show_boxes.toggled.connect(self._on_show_boxes)
        a.show_labels.toggled.connect(self._on_show_labels)
        for action, steps in (
            (a.brighter, {"brightness": 1}),
            (a.darker, {"brightness": -1}),
            (a.more_contrast, {"contrast": 1}),
            (a.less_contrast, {"contrast": -1}),
        ):
            action.triggered.connect(lambda _=False, s=steps: self.step(**s))
        a.reset_adjustments.triggered.connect(lambda: self.set_adjustment(ImageAdjustment()))
        self.document.image_changed.connect(self._on_image_changed)
        self.document.selection_changed.connect(self._on_selection)
        self.canvas.mode_changed.connect(self._on_mode)

    # -- boxes and labels ----------------------------------------------------------------------
    def _apply_visibility(self) -> None:
        a = self.actions
        self.canvas.set_box_visibility(a.show_boxes.isChecked(), a.show_labels.isChecked())

    def _on_show_boxes(self, on: bool) -> None:
        self.settings.show_boxes = on
        if not on:
            self.canvas.set_mode("edit")
            self.document.select([])
        self._apply_visibility()

    def _on_show_labels(self, on: bool) -> None:
        self.settings.show_labels = on
        self._apply_visibility()

    def _on_selection(self, selection: list[int]) -> None:
        if selection and not self.actions.show_boxes.isChecked():
            self.actions.show_boxes.setChecked(True)  # a selected box is a box being edited

    def _on_mode(self, mode: str) -> None:
        if mode == "create" and not self.actions.show_boxes.isChecked():
            self.actions.show_boxes.setChecked(True)  # see the boxes you are drawing among

    # -- brightness and contrast ---------------------------------------------------------------
    def step(self, *, brightness: int = 0, contrast: int = 0) -> None:
        self.set_adjustment(self.adjustment.stepped(brightness=brightness, contrast=contrast))

    def set_adjustment(self, adjustment: ImageAdjustment) -> None:
        changed = adjustment != self.adjustment
        self.adjustment = adjustment
        if changed:
            self._show_image()
        text = adjustment.describe() if not adjustment.is_identity else "Original image"
        limit = "" if changed or adjustment.is_identity else " (limit)"
        self._status.showMessage(f"View: {text}{limit}", 3000)
        self.adjust_label.setText(text)
        self.adjust_label.setVisible(not adjustment.is_identity)

    def _on_image_changed(self) -> None:
        if not self.adjustment.is_identity:  # the canvas has just shown the original pixels
            self._show_image()

    def _show_image(self) -> None:
        qimage = self.document.qimage
        if qimage is None:
            return
        if not self.adjustment.is_identity:
            qimage = adjusted_qimage(qimage, self.adjustment.lut())
        self.canvas.image_item.setPixmap(QPixmap.fromImage(qimage))
