"""Mouse and keyboard interaction of :class:`app.canvas.canvas.Canvas` (a mixin, to keep each file
small). All geometry comes from :mod:`rpn_core.annotation.box_edit`; coordinates follow
:mod:`rpn_core.boxes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent

from app.canvas.box_item import HANDLE_SIZE_PX, BoxItem
from rpn_core.annotation.box_edit import (
    XYXY,
    clamp_group_delta,
    pick_handle,
    rect_from_drag,
    resize,
)
from rpn_core.annotation.document import MIN_BOX_SIZE

__all__ = ["CanvasInputMixin"]

_HANDLE_CURSORS = {
    0: Qt.CursorShape.SizeFDiagCursor,
    4: Qt.CursorShape.SizeFDiagCursor,
    2: Qt.CursorShape.SizeBDiagCursor,
    6: Qt.CursorShape.SizeBDiagCursor,
    1: Qt.CursorShape.SizeVerCursor,
    5: Qt.CursorShape.SizeVerCursor,
    3: Qt.CursorShape.SizeHorCursor,
    7: Qt.CursorShape.SizeHorCursor,
}
_NUDGE_KEYS = {
    Qt.Key.Key_Left: (-1, 0),
    Qt.Key.Key_Right: (1, 0),
    Qt.Key.Key_Up: (0, -1),
    Qt.Key.Key_Down: (0, 1),
}


@dataclass
class _Drag:
    kind: str  # "create" | "move" | "resize" | "pan"
    start: QPointF  # scene position of the press
    start_view: QPoint = field(default_factory=QPoint)
    handle: int | None = None
    start_boxes: dict[int, XYXY] = field(default_factory=dict)
    current: dict[int, XYXY] = field(default_factory=dict)
    rect: XYXY | None = None


class CanvasInputMixin:
    """Event handling for the canvas; expects the attributes :class:`app.canvas.canvas.Canvas` sets."""

    def _init_input_state(self) -> None:
        self._drag: _Drag | None = None
        self._space_held = False
        self._space_panned = False
        self._shown_selection: set[int] = set()

    # -- helpers -------------------------------------------------------------------------------
    def _scene_pos(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def box_at(self, scene_pos: QPointF) -> int | None:
        """Index of the smallest box containing ``scene_pos`` (nested boxes stay reachable);
        None while the boxes are hidden (View ▸ Show Boxes)."""
        if not self._boxes_visible:
            return None
        best, best_area = None, None
        for item in self.scene().items(scene_pos):
            if isinstance(item, BoxItem):
                x1, y1, x2, y2 = item.xyxy()
                if x1 <= scene_pos.x() <= x2 and y1 <= scene_pos.y() <= y2:
                    area = (x2 - x1) * (y2 - y1)
                    if best_area is None or area < best_area:
                        best, best_area = item, area
        return None if best is None else self._items.index(best)

    def _handle_at(self, view_pos: QPointF) -> int | None:
        """The handle under ``view_pos``. Inside a small box the reach of the handles shrinks
        to a quarter of its smaller screen side, so its middle still moves it."""
        points = [(p.x(), p.y()) for p in self.handle_view_points()]
        if not points or self._mode != "edit":
            return None
        x, y = view_pos.x(), view_pos.y()
        (left, top), (right, bottom) = points[0], points[4]
        tolerance = HANDLE_SIZE_PX
        if left < x < right and top < y < bottom:
            tolerance = min(tolerance, max(2.0, 0.25 * min(right - left, bottom - top)))
        return pick_handle(points, (x, y), tolerance)

    def _cancel_drag(self) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        self._rubber.setVisible(False)
        for i, xyxy in drag.start_boxes.items():
            if i < len(self._items):
                self._items[i].set_xyxy(xyxy)
                self.tags.move(i, xyxy[0], xyxy[1])
                self.document.preview_box(i, xyxy)
        self._place_handles()

    # -- mouse -----------------------------------------------------------------------------------
    def _mouse_press(self, event: QMouseEvent) -> bool:
        pos = self._scene_pos(event)
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_held
        ):
            self._space_panned = self._space_held
            self._drag = _Drag("pan", pos, start_view=event.position().toPoint())
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return True
        if button != Qt.MouseButton.LeftButton or self.document.annotation is None:
            return False
        self.setFocus()
        if self._mode == "create":
            self._drag = _Drag("create", pos)
            self._rubber.setRect(QRectF(pos, pos))
            self._rubber.setVisible(True)
            return True
        handle = self._handle_at(event.position())
        if handle is not None:
            index = self._handle_box()
            xyxy = self._items[index].xyxy()
            self._drag = _Drag("resize", pos, handle=handle, start_boxes={index: xyxy})
            return True
        index = self.box_at(pos)
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        selection = self.document.selection
        if index is None:
            if not ctrl:
                self.document.select([])
            return True
        if ctrl:
            toggled = set(selection) ^ {index}
            self.document.select(toggled)
            return True
        if index not in selection:
            self.document.select([index])
            selection = [index]
        self._drag = _Drag("move", pos, start_boxes={i: self._items[i].xyxy() for i in selection})
        return True

    def _mouse_move(self, event: QMouseEvent) -> None:
        pos = self._scene_pos(event)
        self.cursor_moved.emit(pos.x(), pos.y())
        drag = self._drag
        if drag is None:
            self._update_hover_cursor(event)
            return
        if drag.kind == "pan":
            delta = event.position().toPoint() - drag.start_view
            drag.start_view = event.position().toPoint()
            h, v = self.horizontalScrollBar(), self.verticalScrollBar()
            h.setValue(h.value() - delta.x())
            v.setValue(v.value() - delta.y())
            return
        w, h = self.document.size
        if drag.kind == "create":
            drag.rect = rect_from_drag((drag.start.x(), drag.start.y()), (pos.x(), pos.y()), w, h)
            x1, y1, x2, y2 = drag.rect
            self._rubber.setRect(QRectF(x1, y1, x2 - x1, y2 - y1))
            return
        if drag.kind == "resize":
            ((index, start),) = drag.start_boxes.items()
            drag.current = {index: resize(start, drag.handle, pos.x(), pos.y(), w, h)}
        else:  # move
            dx, dy = clamp_group_delta(
                list(drag.start_boxes.values()),
                pos.x() - drag.start.x(),
                pos.y() - drag.start.y(),
                w,
                h,
            )
            drag.current = {
                i: (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy) for i, b in drag.start_boxes.items()
            }
        for i, xyxy in drag.current.items():  # only the dragged boxes: O(selected), not O(N)
            self._items[i].set_xyxy(xyxy)
            self.tags.move(i, xyxy[0], xyxy[1])
            self.document.preview_box(i, xyxy)
        self._place_handles()

    def _mouse_release(self, event: QMouseEvent) -> bool:
        drag = self._drag
        if drag is None:
            return False
        if drag.kind == "pan":
            if event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
                self._drag = None
                self._update_hover_cursor(event)
            return True
        if event.button() != Qt.MouseButton.LeftButton:
            return True
        self._drag = None
        if drag.kind == "create":
            self._rubber.setVisible(False)
            rect = drag.rect
            if rect and rect[2] - rect[0] >= MIN_BOX_SIZE and rect[3] - rect[1] >= MIN_BOX_SIZE:
                self._push_new_box(rect)
            if not self.create_sticky:
                self.set_mode("edit")
            return True
        if drag.kind == "resize" and any(
            b[2] - b[0] < MIN_BOX_SIZE or b[3] - b[1] < MIN_BOX_SIZE for b in drag.current.values()
        ):  # a handle dragged onto the opposite edge leaves no box: keep the old one
            self._drag = drag
            self._cancel_drag()
            return True
        if drag.current:
            text = (
                "Resize box"
                if drag.kind == "resize"
                else ("Move box" if len(drag.current) == 1 else f"Move {len(drag.current)} boxes")
            )
            self._push_edit(drag.current, text, None)
        return True

    def _update_hover_cursor(self, event: QMouseEvent) -> None:
        if self._mode == "create":
            shape = Qt.CursorShape.CrossCursor
        elif self._space_held:
            shape = Qt.CursorShape.OpenHandCursor
        else:
            handle = self._handle_at(event.position())
            if handle is not None:
                shape = _HANDLE_CURSORS[handle]
            elif self.box_at(self._scene_pos(event)) is not None:
                shape = Qt.CursorShape.SizeAllCursor
            else:
                shape = Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)

    # -- keys --------------------------------------------------------------------------------------
    def _key_press(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_held = True
                self._space_panned = False
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return True
        if key == Qt.Key.Key_Escape:
            if self._drag is not None:
                self._cancel_drag()
            else:
                self.set_mode("edit")
                self.document.select([])
            return True
        if key in _NUDGE_KEYS and self.document.selection and self._drag is None:
            step = 10.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
            ux, uy = _NUDGE_KEYS[key]
            self.nudge_selection(ux * step, uy * step)
            return True
        return False

    def _key_release(self, event: QKeyEvent) -> bool:
        if event.key() != Qt.Key.Key_Space or event.isAutoRepeat():
            return False
        self._space_held = False
        if self._drag is not None and self._drag.kind == "pan":
            self._drag = None
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if self._mode == "create" else Qt.CursorShape.ArrowCursor
        )
        if not self._space_panned:
            self.verify_requested.emit()
        return True

    def nudge_selection(self, dx: float, dy: float) -> None:
        """Move the selected boxes by ``(dx, dy)`` image pixels, kept inside the image;
        consecutive nudges merge into one undo step."""
        sel = self.document.selection
        boxes = self.document.boxes
        w, h = self.document.size
        starts = [boxes[i].xyxy for i in sel]
        dx, dy = clamp_group_delta(starts, dx, dy, w, h)
        if dx or dy:
            changes = {
                i: (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
                for i, b in zip(sel, starts, strict=True)
            }
            self._push_edit(changes, "Nudge", "nudge")
