"""The sortable proposals list: a table model over ``(P, 4)`` boxes and ``(P,)`` scores.

Boxes follow :mod:`rpn_core.boxes`. Row ``i`` of the source model is proposal ``i`` (rank
``i + 1``; proposals arrive sorted by score, descending). Sorting happens in a
:class:`QSortFilterProxyModel` on :data:`SORT_ROLE` (the raw number), so the source row, the
layer index and the rank never drift apart.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

__all__ = ["COLUMNS", "SORT_ROLE", "ProposalsTableModel", "make_proxy"]

COLUMNS = ("rank", "score", "x1", "y1", "x2", "y2", "w", "h")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex


class ProposalsTableModel(QAbstractTableModel):
    """Read-only table of proposals (see module docstring)."""

    def __init__(self, parent: object | None = None) -> None:
        super().__init__(parent)
        self._values = np.zeros((0, len(COLUMNS)))
        self._score_is_rank = False

    def set_proposals(
        self, boxes: np.ndarray, scores: np.ndarray, *, scores_are_ranks: bool = False
    ) -> None:
        """Replace the rows. ``scores_are_ranks``: the source has no scores (Selective
        Search), so the score column shows "-" (its order is the method's own ranking)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise ValueError(f"{len(b)} boxes but {len(s)} scores")
        rank = np.arange(1, len(b) + 1, dtype=np.float64)
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        self.beginResetModel()
        self._values = np.column_stack([rank, s, b, w, h]) if len(b) else np.zeros((0, 8))
        self._score_is_rank = scores_are_ranks
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._values)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        value = float(self._values[index.row(), index.column()])
        col = COLUMNS[index.column()]
        if role == SORT_ROLE:
            return value
        if role == Qt.ItemDataRole.DisplayRole:
            if col == "rank":
                return str(int(value))
            if col == "score":
                return "-" if self._score_is_rank else f"{value:.3f}"
            return f"{value:.0f}"  # whole pixels keep the list narrow; sorting is exact
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


def make_proxy(
    source: ProposalsTableModel, parent: QObject | None = None
) -> QSortFilterProxyModel:
    """A proxy sorting numerically (score 0.9 before 0.85, rank 10 after 9).

    Give it a ``parent`` that outlives both models, not ``source`` itself: with PySide6 6.12 a
    proxy owned by a parentless Python model crashes the garbage collector (measured).
    """
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(source)
    proxy.setSortRole(SORT_ROLE)
    return proxy
