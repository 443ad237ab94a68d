"""The annotation canvas: a :class:`QGraphicsView` showing the image and one item per GT box.

Scene coordinates ARE original-image pixels (:mod:`rpn_core.boxes`); a downscaled display copy
of a huge image is drawn with the inverse scale. The canvas mirrors the document through its
fine-grained signals (inserting, removing or updating only the items concerned), turns mouse and
key events into undo commands (:mod:`app.state.undo`) and never edits the document directly.
Drags update one item per mouse move and announce it with ``document.box_preview``; the command
is pushed once, on release, so a drag is one undo step.

Mouse: left drag in create mode draws a box; in edit mode it moves the box under the cursor (all
selected boxes if it is selected) or resizes from a handle; Ctrl+click toggles selection; middle
drag or Space+left drag pans; Ctrl+wheel zooms about the cursor. Keys: arrows nudge by 1 px
(Shift: 10), Esc cancels a drag or leaves create mode, Space alone asks to mark verified.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from app.canvas.box_item import BoxItem, HandleItem, label_color
from app.canvas.canvas_input import CanvasInputMixin
from app.canvas.tag_layer import TagLayer
from app.canvas.zorder import Z
from app.state.qdocument import AnnotationDocument
from app.state.undo import AddBoxesCommand, EditBoxesCommand
from rpn_core.annotation.box_edit import handle_points
from rpn_core.annotation.data import Box

__all__ = ["Canvas", "ZOOM_MIN", "ZOOM_MAX"]

ZOOM_MIN, ZOOM_MAX = 0.01, 64.0
ZOOM_STEP = 1.25


class Canvas(CanvasInputMixin, QGraphicsView):
    """The image and its boxes. ``mode`` is ``"edit"`` or ``"create"``.

    Signals: ``cursor_moved(float, float)`` image coordinates under the mouse;
    ``zoom_changed(float)`` view scale (screen px per image px); ``mode_changed(str)``;
    ``verify_requested()`` (Space pressed and released without panning);
    ``files_dropped(list)`` local paths dropped on the view; ``box_activated(int)`` a box was
    double-clicked (the window asks for its class).
    """

    cursor_moved = Signal(float, float)
    zoom_changed = Signal(float)
    mode_changed = Signal(str)
    verify_requested = Signal()
    files_dropped = Signal(list)
    box_activated = Signal(int)

    def __init__(self, document: AnnotationDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.default_label = ""  # class given to newly drawn boxes
        self.create_sticky = False  # stay in create mode after drawing a box
        self._mode = "edit"
        self._zoom = 1.0
        self._fit_mode = True  # re-fit on resize until the user picks a zoom
        self._boxes_visible = True  # View ▸ Show Boxes (app.annotate.view_options)
        self._items: list[BoxItem] = []
        self._init_input_state()
        self._setup_scene()
        self._connect_document()

    # -- set-up --------------------------------------------------------------------------------
    def _setup_scene(self) -> None:
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(48, 48, 52))
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setMouseTracking(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setZValue(Z.IMAGE)
        self.image_item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self.scene().addItem(self.image_item)
        self._handles = [HandleItem(i) for i in range(8)]
        for h in self._handles:
            self.scene().addItem(h)
        self.tags = TagLayer(label_color)
        self.scene().addItem(self.tags)
        self._rubber = QGraphicsRectItem()
        pen = QPen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(Z.RUBBER_BAND)
        self._rubber.setVisible(False)
        self.scene().addItem(self._rubber)

    def _connect_document(self) -> None:
        d = self.document
        d.image_changed.connect(self._on_image_changed)
        d.boxes_inserted.connect(self._on_inserted)
        d.boxes_removed.connect(self._on_removed)
        d.boxes_updated.connect(self._on_updated)
        d.selection_changed.connect(self._on_selection)

    # -- public API ----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in ("edit", "create"):
            raise ValueError(f"unknown canvas mode {mode!r}")
        if mode != self._mode:
            self._mode = mode
            self.viewport().setCursor(
                Qt.CursorShape.CrossCursor if mode == "create" else Qt.CursorShape.ArrowCursor
            )
            self.mode_changed.emit(mode)

    def set_box_visibility(self, boxes: bool, labels: bool) -> None:
        """Show or hide the GT boxes and, while boxes are shown, their class tags. Hidden boxes
        have no handles and cannot be picked (``box_at`` finds none), so no click selects,
        moves or resizes a box the user cannot see; a drag under way is cancelled."""
        if not boxes:
            self._cancel_drag()
        self._boxes_visible = boxes
        for item in self._items:
            item.setVisible(boxes)
        self.tags.setVisible(boxes and labels)
        self._place_handles()

    def box_items(self) -> list[BoxItem]:
        """The box items, in document order (``box_items()[i]`` shows ``document.boxes[i]``)."""
        return list(self._items)

    def image_rect(self) -> QRectF:
        w, h = self.document.size
        return QRectF(0, 0, w, h)

    @property
    def zoom(self) -> float:
        return self._zoom

    def set_zoom(self, zoom: float, *, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` screen px per image px, keeping the image point under viewport
        position ``anchor`` (default: the viewport centre) where it is."""
        zoom = min(max(zoom, ZOOM_MIN), ZOOM_MAX)
        self._fit_mode = False
        at = (anchor if anchor is not None else QPointF(self.viewport().rect().center())).toPoint()
        fixed = self.mapToScene(at)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        delta = self.mapFromScene(fixed) - at
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + delta.x())
        v.setValue(v.value() + delta.y())
        self._apply_zoom(zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self._zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self._zoom / ZOOM_STEP)

    def zoom_fit(self) -> None:
        rect = self.image_rect()
        if rect.isEmpty():
            return
        self.fitInView(rect.adjusted(-4, -4, 4, 4), Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_mode = True
        self._apply_zoom(self.transform().m11())

    def zoom_actual(self) -> None:
        """100 %: one image pixel per device-independent screen pixel."""
        self.set_zoom(1.0)

    # -- zoom bookkeeping ----------------------------------------------------------------------
    def _apply_zoom(self, zoom: float) -> None:
        self._zoom = zoom
        self.tags.set_zoom(zoom)
        # Pixel-exact when magnified (see the pixels), smooth when reduced (no aliasing).
        mode = (
            Qt.TransformationMode.FastTransformation
            if zoom * self._display_scale() >= 2
            else Qt.TransformationMode.SmoothTransformation
        )
        self.image_item.setTransformationMode(mode)
        self.setRenderHint(
            QPainter.RenderHint.SmoothPixmapTransform,
            mode == Qt.TransformationMode.SmoothTransformation,
        )
        self._place_handles()
        self.zoom_changed.emit(zoom)

    def _display_scale(self) -> float:
        loaded = self.document.loaded
        return loaded.scale if loaded is not None else 1.0

    # -- document -> items ---------------------------------------------------------------------
    def _new_item(self, box: Box) -> BoxItem:
        item = BoxItem(box)
        item.setVisible(self._boxes_visible)
        self.scene().addItem(item)
        return item

    def _on_image_changed(self) -> None:
        self._cancel_drag()
        for item in self._items:
            self.scene().removeItem(item)
        self._items = []
        qimage = self.document.qimage
        if qimage is None:
            self.image_item.setPixmap(QPixmap())
        else:
            self.image_item.setPixmap(QPixmap.fromImage(qimage))
            s = self._display_scale()
            self.image_item.setTransform(QTransform.fromScale(1 / s, 1 / s))
        rect = self.image_rect()
        # Room to pan the image to any viewport edge at any zoom, and to zoom about any point.
        pad = 4 * max(rect.width(), rect.height(), 1000.0)
        self.scene().setSceneRect(rect.adjusted(-pad, -pad, pad, pad))
        self._items = [self._new_item(b) for b in self.document.boxes]
        self.tags.set_scene_rect(rect)
        self.tags.set_boxes(self.document.boxes)
        self._place_handles()
        self.zoom_fit()
        self.viewport().update()  # the foreground text depends on the image

    def _on_inserted(self, indices: list[int]) -> None:
        boxes = self.document.boxes
        for i in indices:  # ascending, final positions: inserting in order is exact
            self._items.insert(i, self._new_item(boxes[i]))
        self.tags.set_boxes(boxes)

    def _on_removed(self, indices: list[int]) -> None:
        for i in reversed(indices):
            self.scene().removeItem(self._items.pop(i))
        self.tags.set_boxes(self.document.boxes)
        self._place_handles()

    def _on_updated(self, indices: list[int]) -> None:
        boxes = self.document.boxes
        for i in indices:
            self._items[i].set_box(boxes[i])
        self.tags.set_boxes(boxes)
        self._place_handles()

    def _on_selection(self, selection: list[int]) -> None:
        chosen = set(selection)
        for i in self._shown_selection - chosen:
            if i < len(self._items):
                self._items[i].set_selected(False)
        for i in chosen:
            self._items[i].set_selected(True)
        self._shown_selection = chosen
        self._place_handles()

    def _handle_box(self) -> int | None:
        """The box whose handles are shown: the only selected box, if exactly one (and boxes
        are shown)."""
        sel = self.document.selection
        shown = self._boxes_visible and len(sel) == 1 and sel[0] < len(self._items)
        return sel[0] if shown else None

    def _place_handles(self) -> None:
        index = self._handle_box()
        visible = index is not None and self._mode == "edit"
        if visible:
            points = handle_points(self._items[index].xyxy())
            for h, (x, y) in zip(self._handles, points, strict=True):
                h.setPos(QPointF(x, y))
        for h in self._handles:
            h.setVisible(visible)

    def handle_view_points(self) -> list[QPointF]:
        """The 8 handles of the selected box in viewport coordinates (empty if none shown)."""
        index = self._handle_box()
        if index is None:
            return []
        return [
            QPointF(self.mapFromScene(QPointF(x, y)))
            for x, y in handle_points(self._items[index].xyxy())
        ]

    # -- commands --------------------------------------------------------------------------------
    def _push_new_box(self, xyxy: tuple[float, float, float, float]) -> None:
        box = Box(*xyxy, label=self.default_label)
        cmd = AddBoxesCommand(self.document, [box], "Draw box")
        if cmd.boxes:
            self.document.undo_stack.push(cmd)

    def _push_edit(self, changes: dict[int, tuple], text: str, merge_key: str | None) -> None:
        boxes = self.document.boxes
        new = {
            i: boxes[i].with_coords(*xyxy)
            for i, xyxy in changes.items()
            if tuple(xyxy) != boxes[i].xyxy
        }
        if new:
            self.document.undo_stack.push(EditBoxesCommand(self.document, new, text, merge_key))

    # -- events not about boxes ------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        """Without an image, say why in the middle of the view (unreadable file, none open)."""
        if self.document.qimage is not None:
            return
        path = self.document.image_path
        error = self.document.image_error
        if error:
            text = f"This image cannot be shown:\n{error}"
        elif path is None:
            text = "Open an image or a folder (Ctrl+O, Ctrl+Shift+O) or drop files here"
        else:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(215, 215, 220))
        painter.drawText(QRectF(self.viewport().rect()), Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit_mode:
            self.zoom_fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120.0
            if steps:
                self.set_zoom(self._zoom * ZOOM_STEP**steps, anchor=event.position())
            event.accept()
            return
        super().wheelEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            super().dropEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._key_press(event):
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._key_release(event):
            super().keyReleaseEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._mouse_press(event):
            super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        index = self.box_at(self.mapToScene(event.position().toPoint()))
        if (
            self._mode == "edit"
            and event.button() == Qt.MouseButton.LeftButton
            and index is not None
        ):
            self.box_activated.emit(index)
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._mouse_move(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._mouse_release(event):
            super().mouseReleaseEvent(event)
