"""A non-modal message bar above the canvas: errors and warnings that name the file and the
reason stay visible until dismissed; info messages fade after a few seconds. Nothing blocks
(no modal dialog), so a folder full of bad files never buries the user in pop-ups."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

__all__ = ["MessageBar"]

_STYLE = {
    "info": "background:#e8f1fd; color:#12355b; border:1px solid #a9c7ee;",
    "warning": "background:#fff4d6; color:#5b4300; border:1px solid #e6c46b;",
    "error": "background:#fde5e5; color:#6b0f0f; border:1px solid #e59a9a;",
}
INFO_TIMEOUT_MS = 6000


class MessageBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="✕", autoRaise=True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._timer = QTimer(self, singleShot=True, interval=INFO_TIMEOUT_MS)
        self._timer.timeout.connect(self.dismiss)
        self.messages: list[tuple[str, str]] = []  # history of this session (level, text)
        self.level = ""
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        """Show ``text``; a lower-level message never hides a pending error."""
        self.messages.append((level, text))
        rank = {"info": 0, "warning": 1, "error": 2}
        if self.isVisible() and rank.get(level, 0) < rank.get(self.level, 0):
            return
        self.level = level
        pending = sum(1 for lv, _t in self.messages[-50:] if lv != "info")
        suffix = f"  ({pending} problems this session; see Help ▸ Messages)" if pending > 1 else ""
        self.label.setText(text + suffix)
        self.setStyleSheet(f"MessageBar {{{_STYLE.get(level, _STYLE['info'])}}}")
        self.show()
        if level == "info":
            self._timer.start()
        else:
            self._timer.stop()

    def dismiss(self) -> None:
        self.level = ""
        self.hide()
