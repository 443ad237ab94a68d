"""The file list panel: every image of the session with its state, and a filter.

States (:class:`rpn_core.annotation.image_state.ImageState`) show as a coloured dot; the tooltip gives the
full path and the reason (e.g. why an image is unreadable or a save failed). The filter box
matches the name (case-insensitive); the combo restricts to one state.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QListView, QVBoxLayout, QWidget

from rpn_core.annotation.image_state import ImageState

__all__ = ["FileListPanel", "STATE_COLORS"]

STATE_COLORS = {
    ImageState.UNKNOWN: QColor(140, 140, 140),
    ImageState.EMPTY: QColor(220, 220, 220),
    ImageState.ANNOTATED: QColor(60, 140, 255),
    ImageState.VERIFIED: QColor(40, 200, 90),
    ImageState.UNSAVED: QColor(255, 170, 0),
    ImageState.UNREADABLE: QColor(230, 50, 50),
}
_STATE_ROLE = Qt.ItemDataRole.UserRole + 1
_PATH_ROLE = Qt.ItemDataRole.UserRole + 2


def _dot(color: QColor) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(30, 30, 30))
    p.setBrush(color)
    p.drawEllipse(2, 2, 10, 10)
    p.end()
    return QIcon(pm)


class _StateFilter(QSortFilterProxyModel):
    def __init__(self) -> None:
        super().__init__()
        self.state: ImageState | None = None
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_state(self, state: ImageState | None) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10 deprecates invalidateFilter()
            self.beginFilterChange()
            self.state = state
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.state = state
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        if self.state is not None:
            index = self.sourceModel().index(row, 0, parent)
            if index.data(_STATE_ROLE) != self.state.name:
                return False
        return super().filterAcceptsRow(row, parent)


class FileListPanel(QWidget):
    """Signal ``image_activated(int)``: the user picked the image at that index."""

    image_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._icons = {s: _dot(c) for s, c in STATE_COLORS.items()}
        self.model = QStandardItemModel(self)
        self.proxy = _StateFilter()
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit(placeholderText="Filter by name…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.state_combo = QComboBox()
        self.state_combo.addItem("All", None)
        for state in ImageState:
            self.state_combo.addItem(self._icons[state], state.value, state)
        self.state_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_state(self.state_combo.currentData())
        )
        self.view = QListView()
        self.view.setModel(self.proxy)
        self.view.setUniformItemSizes(True)
        self.view.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.view.activated.connect(self._on_activated)
        self.view.clicked.connect(self._on_activated)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.state_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.view)
        self._rows: dict[Path, int] = {}

    def set_images(
        self, images: list[Path], root: Path | None, states: dict[Path, tuple[ImageState, str]]
    ) -> None:
        self.model.clear()
        self._rows = {}
        for row, path in enumerate(images):
            try:
                name = str(path.relative_to(root)) if root else path.name
            except ValueError:
                name = path.name
            item = QStandardItem(name)
            item.setData(str(path), _PATH_ROLE)
            self.model.appendRow(item)
            self._rows[path] = row
            self.set_state(path, *states.get(path, (ImageState.UNKNOWN, "")))

    def set_state(self, path: Path, state: ImageState, tip: str = "") -> None:
        row = self._rows.get(path)
        if row is None:
            return
        item = self.model.item(row)
        item.setIcon(self._icons[state])
        item.setData(state.name, _STATE_ROLE)
        item.setToolTip(f"{path}\n{state.value}" + (f": {tip}" if tip else ""))

    def state_name(self, row: int) -> str:
        return self.model.item(row).data(_STATE_ROLE)

    def set_current(self, row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)

    def _on_activated(self, index: QModelIndex) -> None:
        self.image_activated.emit(self.proxy.mapToSource(index).row())
