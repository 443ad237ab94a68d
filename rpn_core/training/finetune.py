"""Fine-tuning the RPN on a user's boxes: a generator of progress records.

Box convention: see :mod:`rpn_core.boxes`. Imported lazily (torch at module top); the
settings and records live torch-free in :mod:`rpn_core.training.types` and are re-exported here.

``fine_tune(model, items, config)`` trains ``model`` in place and yields :class:`Progress`
records; the last one (phase ``"done"``) carries the :class:`TrainResult`, which is also the
generator's return value. The loss is the RPN's own (:meth:`rpn_core.rpn.model.RPNModel.losses`:
objectness BCE plus smooth-L1 box regression over the sampled anchor minibatch).

* Modes (:mod:`rpn_core.training.engine`): ``head`` trains the RPN head on cached backbone
  features; ``partial`` also the backbone's last stage; ``full`` the whole backbone (its
  batch-norm statistics stay frozen in every mode).
* Data: images with at least one box; a seeded train/validation split; ``augment_copies``
  fixed augmentation copies per training image (flip, scale jitter), cached.
* Optimiser: SGD with momentum and weight decay, linear warm-up then cosine decay; with a
  time budget the schedule follows whichever of steps or time is further along.
* Determinism: the same items, config and seed give the same losses (without a time budget).
* Best checkpoint: every validation pass scores the weights by
  :func:`~rpn_core.training.types.selection_metric` (recall@N at IoU 0.7, then the lower
  validation loss); the model ends with the best-scoring trained weights, and the result says
  whether they beat the starting weights (``TrainResult.improved``) -- a run never silently
  hands back weights worse than the ones it started from.
* Stopping: ``cancel()`` returning true (or a set ``threading.Event``) stops after the current
  step; closing the generator stops too. A non-finite loss, gradient or weight raises
  :class:`TrainingError` with the weights of the last good step restored.
* Distributed: when a default process group is initialised (``torchrun``, see
  :func:`rpn_core.training.engine.init_distributed`) the loss module runs under
  DistributedDataParallel and each process takes its DistributedSampler shard of the
  training images and its share of the validation images; metrics are summed over processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from rpn_core.rpn.model import RPNModel
from rpn_core.training.data import Augment, augment_plan
from rpn_core.training.engine import (
    CachedInput,
    DistContext,
    LossModule,
    cache_input,
    first_trainable_block,
    freeze_backbone,
    prepare_sample,
    recall_counts,
    recall_dict,
    set_trainable,
)
from rpn_core.training.types import (
    CancelFlag,
    Progress,
    TrainConfig,
    TrainingError,
    TrainResult,
    is_cancelled,
    plan_split,
    selection_metric,
)

__all__ = ["Progress", "TrainConfig", "TrainResult", "TrainingError", "fine_tune", "plan_split"]


class _Run:
    """State of one :func:`fine_tune` call (split out to keep each function short)."""

    def __init__(
        self,
        model: RPNModel,
        items: Sequence[object],
        config: TrainConfig,
        validation_items: Sequence[object] | None,
    ) -> None:
        self.model = model
        self.config = config
        self.dist = DistContext.current()
        if config.device is not None:
            model.to(config.device)
        self.samples, self.split = plan_split(items, config, validation_items)
        if model.config.is_ssd and config.mode == "partial":
            raise ValueError(
                "this model's backbone (the COCO SSD's) has no 'last stage' mode: "
                "train the head, or the whole network"
            )
        self.first = first_trainable_block(config.mode, model.backbone_blocks)
        n_local = math.ceil(len(self.split.train) / self.dist.world_size)
        self.steps_per_epoch = math.ceil(n_local / config.batch_size)
        total = self.steps_per_epoch * config.epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.train_cache: list[list[CachedInput]] = []
        self.val_cache: list[CachedInput] = []
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + self.dist.rank)
        # (step, weights before that optimiser step): restored when a later value is not finite
        self.snapshot: tuple[int, list[torch.Tensor]] = (-1, [])
        self.start = time.perf_counter()
        self.metric = selection_metric(config)
        self.before_score: tuple[float, float] | None = None
        # (score, validation record, trainable weights) of the best trained checkpoint so far
        self.best: tuple[tuple[float, float], Progress, list[torch.Tensor]] | None = None

    def score(self, record: Progress) -> tuple[float, float] | None:
        """``(recall, -validation loss)``, larger is better; None without validation."""
        recall = record.recall.get(self.metric, math.nan)
        if not (math.isfinite(recall) and math.isfinite(record.val_total)):
            return None
        return (recall, -record.val_total)

    def keep_if_best(self, record: Progress, params: list) -> None:
        """Note a validation pass: the starting score at step 0, else snapshot the weights
        when they score best so far (every process agrees: the metrics are summed)."""
        score = self.score(record)
        if record.step == 0:
            self.before_score = score
        elif score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, record, [p.detach().clone() for p in params])

    def restore_best(self, final: Progress, params: list) -> Progress:
        """Put the best trained checkpoint back into the model; its validation record."""
        if self.best is None:
            return final
        _, record, saved = self.best
        if record.step != final.step:
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
        return record

    def build_cache(self, cancel: CancelFlag) -> Generator[Progress, None, bool]:
        """Augment and cache every training image, then the validation images."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        val_local = self.split.validation[self.dist.rank :: self.dist.world_size]
        todo = [(i, True) for i in self.split.train] + [(i, False) for i in val_local]
        for k, (index, is_train) in enumerate(todo):
            if is_cancelled(cancel):
                return False
            pixels, boxes = prepare_sample(self.samples[index], self.model)
            if is_train:
                plan = augment_plan(
                    cfg.augment_copies, hflip=cfg.hflip, scale_range=cfg.scale_jitter, rng=rng
                )
                copies = [cache_input(self.model, pixels, boxes, a, self.first) for a in plan]
                self.train_cache.append(copies)
            else:  # validation: the original image only
                self.val_cache.append(cache_input(self.model, pixels, boxes, Augment(), self.first))
            name = self.samples[index].name
            yield Progress("prepare", k + 1, len(todo), message=f"preparing {name}")
        return True

    @torch.no_grad()
    def validate(self, loss_module: LossModule) -> tuple[dict[str, float], dict[str, float]]:
        """Validation losses (a fixed minibatch draw) and recall, summed over processes."""
        top_ns = self.config.recall_top_n
        g = torch.Generator().manual_seed(self.config.seed + 104729 + self.dist.rank)
        sums = np.zeros(3)  # cls, reg, images
        found = np.zeros((len(top_ns), 2), dtype=np.int64)
        n_gt = 0
        was_training = self.model.training
        self.model.eval()
        for item in self.val_cache:
            feat = loss_module.features(item)
            losses = self.model.losses(feat, [item.boxes], g)
            sums += [float(losses["loss_objectness"]), float(losses["loss_rpn_box_reg"]), 1.0]
            found += recall_counts(self.model, feat, item.boxes, top_ns)
            n_gt += len(item.boxes)
        self.model.train(was_training)
        packed = np.concatenate([sums, found.reshape(-1), [n_gt]]).astype(np.float64)
        packed = self.dist.all_sum(torch.from_numpy(packed)).numpy()
        images, n_gt = packed[2], int(packed[-1])
        if images == 0:
            losses = {"cls": math.nan, "reg": math.nan, "total": math.nan}
        else:
            losses = {"cls": float(packed[0] / images), "reg": float(packed[1] / images)}
            losses["total"] = losses["cls"] + losses["reg"]
        recall = recall_dict(packed[3:-1].reshape(len(top_ns), 2), n_gt, top_ns)
        return losses, recall

    def val_record(self, step: int, epoch: int, loss_module: LossModule) -> Progress:
        losses, recall = self.validate(loss_module)
        return Progress(
            "validate", step, self.total_steps, epoch,
            val_loss_cls=losses["cls"], val_loss_reg=losses["reg"], val_total=losses["total"],
            recall=recall,
        )  # fmt: skip

    def lr_at(self, step: int) -> float:
        """Warm-up then cosine over the larger of step and time fractions."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
        frac = step / max(1, self.total_steps)
        if cfg.time_budget_s:
            frac = max(frac, (time.perf_counter() - self.start) / cfg.time_budget_s)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    def epoch_batches(self, epoch: int) -> list[list[tuple[CachedInput, np.ndarray]]]:
        """This process's batches of one epoch: a seeded shuffle (DistributedSampler, one
        replica when alone) and a seeded choice of augmentation copy per image."""
        n = len(self.train_cache)
        sampler = DistributedSampler(
            range(n), num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=True, seed=self.config.seed,
        )  # fmt: skip
        sampler.set_epoch(epoch)
        copy_rng = np.random.default_rng([self.config.seed, epoch])
        copies = copy_rng.integers(0, self.config.augment_copies, size=n)
        items = [self.train_cache[i][copies[i]] for i in sampler]
        b = self.config.batch_size
        return [[(it, it.boxes) for it in items[k : k + b]] for k in range(0, len(items), b)]


def _check_finite(dist: DistContext, value: torch.Tensor) -> bool:
    """True when ``value`` is finite on every process (agreed, so no process hangs)."""
    bad = torch.tensor([0.0 if bool(torch.isfinite(value).all()) else 1.0], dtype=torch.float64)
    return float(dist.all_sum(bad)[0]) == 0.0


def _stop_reason(run: _Run, cancel: CancelFlag) -> str | None:
    """``"cancelled"``, ``"time_budget"`` or None, agreed by every process."""
    budget = run.config.time_budget_s
    flags = torch.tensor(
        [
            1.0 if is_cancelled(cancel) else 0.0,
            1.0 if budget and time.perf_counter() - run.start >= budget else 0.0,
        ],
        dtype=torch.float64,
    )
    flags = run.dist.all_sum(flags)
    if flags[0] > 0:
        return "cancelled"
    if flags[1] > 0:
        return "time_budget"
    return None


def _step(
    run: _Run, module: torch.nn.Module, optimizer: torch.optim.Optimizer, params: list,
    batch: list[tuple[CachedInput, np.ndarray]], step: int,
) -> dict[str, float]:  # fmt: skip
    """One optimiser step; on a non-finite value raise :class:`TrainingError` with the
    weights restored to the last ones whose loss was finite (``TrainingError.step`` steps)."""
    losses = module([b[0] for b in batch], [b[1] for b in batch], run.generator)
    cls, reg = losses["loss_objectness"], losses["loss_rpn_box_reg"]
    total = cls + reg
    value = float(total.detach())
    where = f"at step {step + 1} (epoch {step // run.steps_per_epoch + 1})"
    if not _check_finite(run.dist, total.detach()):
        kept = _restore(run, params, step - 1)
        raise TrainingError(
            f"the loss became {value:g} {where}; training stopped and the weights of step "
            f"{kept} (the last with a finite loss) are kept. Try a lower learning rate.",
            step=kept,
        )
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, run.config.grad_clip)
    if not _check_finite(run.dist, norm.detach()):
        raise TrainingError(
            f"the gradients became non-finite {where}; the weights of step {step} are kept. "
            "Try a lower learning rate.", step=step,
        )  # fmt: skip
    run.snapshot = (step, [p.detach().clone() for p in params])
    optimizer.step()
    finite = torch.tensor(float(all(bool(torch.isfinite(p).all()) for p in params)))
    if not _check_finite(run.dist, torch.log(finite)):  # log(0) = -inf where not finite
        kept = _restore(run, params, step)
        raise TrainingError(
            f"the weights became non-finite {where} (learning rate too high?); the weights "
            f"of step {kept} were restored.", step=kept,
        )  # fmt: skip
    return {"cls": float(cls.detach()), "reg": float(reg.detach()), "total": value}


def _restore(run: _Run, params: list, step: int) -> int:
    """Put back the weights from before optimiser step ``step`` (0-based), if kept; return
    the number of steps whose result the model now holds."""
    kept_step, saved = run.snapshot
    if kept_step != step or step < 0:
        return step + 1
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return step


def _wrap(run: _Run, params: list) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    module: torch.nn.Module = LossModule(run.model, run.first)
    if run.dist.active:
        from torch.nn.parallel import DistributedDataParallel

        dev = run.model.device
        ids = [dev] if dev.type == "cuda" else None
        module = DistributedDataParallel(module, device_ids=ids)
    optimizer = torch.optim.SGD(
        params, lr=run.config.lr, momentum=run.config.momentum,
        weight_decay=run.config.weight_decay,
    )  # fmt: skip
    return module, optimizer


def fine_tune(
    model: RPNModel,
    dataset_items: Sequence[object],
    config: TrainConfig | None = None,
    *,
    validation_items: Sequence[object] | None = None,
    cancel: CancelFlag = None,
) -> Generator[Progress, None, TrainResult]:
    """Fine-tune ``model`` in place on annotated images; yield :class:`Progress` records.

    ``dataset_items``: :class:`~rpn_core.training.data.TrainSample`, ``ImageAnnotation`` or
    ``(image_or_path, boxes)`` items (images without boxes are skipped); a seeded share
    validates unless ``validation_items`` are given. Raises
    :class:`TrainingError` (non-finite values; weights of the last good step kept) and
    ``ValueError`` (no usable images). The model ends in eval mode with its backbone frozen.
    """
    config = config or TrainConfig()
    run = _Run(model, dataset_items, config, validation_items)
    try:
        completed = yield from run.build_cache(cancel)
        if not completed:
            return _result(run, 0, "cancelled", None, None, None)
        params = set_trainable(model, run.first)
        module, optimizer = _wrap(run, params)
        base = loss_module_of(module)
        before = run.val_record(0, 0, base)
        run.keep_if_best(before, params)
        yield before
        step, stopped = yield from _train_loop(run, module, optimizer, params, cancel)
        final = best = None
        if stopped != "cancelled":
            final = run.val_record(step, math.ceil(step / run.steps_per_epoch), base)
            run.keep_if_best(final, params)
            yield final
            best = run.restore_best(final, params)
        result = _result(run, step, stopped, before, best, final)
        yield Progress("done", step, run.total_steps, result=result)
        return result
    finally:
        freeze_backbone(model)


def loss_module_of(module: torch.nn.Module) -> LossModule:
    """The :class:`LossModule` inside a DistributedDataParallel wrapper (or itself)."""
    return module.module if hasattr(module, "module") else module


def _train_loop(
    run: _Run, module: torch.nn.Module, optimizer: torch.optim.Optimizer, params: list,
    cancel: CancelFlag,
) -> Generator[Progress, None, tuple[int, str]]:  # fmt: skip
    cfg = run.config
    step, seen, train_time = 0, 0, 0.0
    run.model.train()
    base = loss_module_of(module)
    for epoch in range(cfg.epochs):
        for batch in run.epoch_batches(epoch):
            if step >= run.total_steps:
                return step, "max_steps" if cfg.max_steps else "completed"
            reason = _stop_reason(run, cancel)
            if reason:
                return step, reason
            lr = run.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            try:
                losses = _step(run, module, optimizer, params, batch, step)
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
                _raise_if_out_of_memory(run, params, step, exc)
                raise
            train_time += time.perf_counter() - t0
            step += 1
            seen += len(batch) * run.dist.world_size
            rate = seen / max(train_time, 1e-9)
            eta = (run.total_steps - step) * train_time / step
            if cfg.time_budget_s:
                eta = min(eta, max(0.0, cfg.time_budget_s - (time.perf_counter() - run.start)))
            yield Progress(
                "train", step, run.total_steps, epoch + 1, losses["cls"], losses["reg"],
                losses["total"], lr, rate, eta,
            )  # fmt: skip
        due = (epoch + 1) % cfg.validate_every == 0
        if due and epoch + 1 < cfg.epochs and step < run.total_steps:
            record = run.val_record(step, epoch + 1, base)
            run.keep_if_best(record, params)
            yield record
            run.model.train()
    return step, "completed"


def _raise_if_out_of_memory(run: _Run, params: list, step: int, exc: BaseException) -> None:
    """Turn an out-of-memory error of step ``step`` (0-based) into a :class:`TrainingError`
    with advice, the weights of the last completed step restored; other errors pass."""
    text = str(exc)
    if not isinstance(exc, (torch.OutOfMemoryError, MemoryError)) and not (
        "out of memory" in text or "not enough memory" in text
    ):
        return
    if run.snapshot[0] == step:  # it failed inside optimizer.step(): undo the partial update
        _restore(run, params, step)
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    raise TrainingError(
        f"ran out of memory at step {step + 1} ({first_line}); the weights of step {step} are "
        "kept. Try a smaller batch size, the 'head' mode or a smaller image size (max side).",
        step=step,
    ) from exc


def _result(
    run: _Run, steps: int, stopped: str, before: Progress | None, best: Progress | None,
    final: Progress | None,
) -> TrainResult:  # fmt: skip
    improved = None
    if best is not None and run.best is not None and run.before_score is not None:
        improved = run.best[0] > run.before_score
    return TrainResult(
        config=run.config,
        split=run.split,
        names=tuple(s.name for s in run.samples),
        steps=steps,
        epochs=steps / max(1, run.steps_per_epoch),
        stopped=stopped,  # type: ignore[arg-type]
        seconds=time.perf_counter() - run.start,
        metrics_before=dict(before.recall) if before is not None else {},
        metrics_after=dict(best.recall) if best is not None else {},
        data_summary=run.split.summary(run.samples),
        best_step=best.step if best is not None else steps,
        metrics_final=dict(final.recall) if final is not None else {},
        improved=improved,
        val_loss_before=before.val_total if before is not None else math.nan,
        val_loss_after=best.val_total if best is not None else math.nan,
    )
