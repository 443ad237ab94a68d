"""Settings and records of fine-tuning, torch-free (the app builds them without torch).

See :mod:`rpn_core.training.finetune` for what they drive. Box convention: see :mod:`rpn_core.boxes`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from rpn_core.errors import RPNStudioError
from rpn_core.training.data import DataSplit, TrainSample, as_samples, split_samples

__all__ = [
    "CancelFlag",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "is_cancelled",
    "plan_split",
]

Mode = Literal["head", "partial", "full"]
CancelFlag = Callable[[], bool] | threading.Event | None


class TrainingError(RPNStudioError):
    """Training cannot go on (e.g. the loss became NaN); the weights of ``step`` are kept."""

    def __init__(self, reason: str, *, step: int = 0) -> None:
        super().__init__(None, reason)
        self.step = step


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Fine-tuning settings; the only place their defaults live (keyword-only).

    ``validate_every``: validation after every that many epochs (and always at the end).
    """

    mode: Mode = "head"
    epochs: int = 12
    max_steps: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 5
    batch_size: int = 2
    hflip: bool = True
    scale_jitter: tuple[float, float] = (0.8, 1.25)
    augment_copies: int = 4
    val_fraction: float = 0.2
    seed: int = 0
    time_budget_s: float | None = None
    device: str | None = None
    recall_top_n: tuple[int, ...] = (100,)
    validate_every: int = 1
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("head", "partial", "full"):
            raise ValueError(f"mode must be 'head', 'partial' or 'full', got {self.mode!r}")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("epochs (and max_steps, when given) must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {self.lr}")
        if self.batch_size < 1 or self.augment_copies < 1 or self.validate_every < 1:
            raise ValueError("batch_size, augment_copies and validate_every must be >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time budget must be positive, got {self.time_budget_s}")
        object.__setattr__(self, "scale_jitter", tuple(float(s) for s in self.scale_jitter))
        object.__setattr__(self, "recall_top_n", tuple(int(n) for n in self.recall_top_n))

    def to_dict(self) -> dict:
        """JSON-ready (stored in checkpoints)."""
        out = asdict(self)
        out["scale_jitter"] = list(self.scale_jitter)
        out["recall_top_n"] = list(self.recall_top_n)
        return out


@dataclass(frozen=True)
class Progress:
    """One record of :func:`fine_tune`.

    ``phase``: ``"prepare"`` (caching features; ``step`` counts images), ``"train"`` (one
    optimiser step), ``"validate"`` (``val_*`` losses and ``recall``, e.g.
    ``{"recall@100/0.7": 0.8}``; step 0 is the model before training) or ``"done"``
    (``result`` set). Losses of a train record are those of its step's batch.
    """

    phase: Literal["prepare", "train", "validate", "done"]
    step: int
    total_steps: int
    epoch: int = 0
    loss_cls: float = math.nan
    loss_reg: float = math.nan
    total: float = math.nan
    lr: float = 0.0
    images_per_s: float = 0.0
    eta_s: float = math.nan
    val_loss_cls: float = math.nan
    val_loss_reg: float = math.nan
    val_total: float = math.nan
    recall: dict[str, float] = field(default_factory=dict)
    message: str = ""
    result: TrainResult | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a run did: the split, the steps, why it stopped, recall before and after."""

    config: TrainConfig
    split: DataSplit
    names: tuple[str, ...]
    steps: int
    epochs: float
    stopped: Literal["completed", "max_steps", "time_budget", "cancelled"]
    seconds: float
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    data_summary: dict


def plan_split(
    items: Sequence[object],
    config: TrainConfig,
    validation_items: Sequence[object] | None = None,
) -> tuple[list[TrainSample], DataSplit]:
    """The samples :func:`~rpn_core.training.finetune.fine_tune` would use and their split.

    Without ``validation_items`` the split is seeded (``config.val_fraction``, ``seed``);
    with them, ``items`` all train and ``validation_items`` all validate.
    """
    samples = as_samples(items)
    if validation_items is None:
        return samples, split_samples(len(samples), config.val_fraction, config.seed)
    if not samples:
        raise ValueError("no annotated images to train on (every image needs at least one box)")
    n = len(samples)
    samples += as_samples(validation_items)
    return samples, DataSplit(tuple(range(n)), tuple(range(n, len(samples))))


def is_cancelled(cancel: CancelFlag) -> bool:
    """``cancel`` is a callable returning true, or a set :class:`threading.Event`."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
