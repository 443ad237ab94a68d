"""``rpn-studio train DATA_DIR [--epochs N] [--mode head|partial|full] [--out CKPT] [--device]``.

Fine-tunes the RPN (the embedded weights, or ``--weights``) on the annotated images of
``DATA_DIR`` (any format :func:`rpn_core.annotation.dataset.load_dataset` reads) with
:func:`rpn_core.training.finetune.fine_tune`, shows a progress bar on stderr, writes a checkpoint
(:mod:`rpn_core.rpn.checkpoint`) and prints recall@N at IoU 0.5/0.7 on the validation images
before and after. Exit status: 0 done, 1 training failed (e.g. the loss became NaN),
2 bad arguments or no annotated images.

Several GPUs or machines: run the same command under ``torchrun --nproc_per_node=N``; the
``RANK``/``WORLD_SIZE`` variables switch on DistributedDataParallel (NCCL on CUDA, gloo on
the CPU) with a DistributedSampler; only rank 0 prints and writes the checkpoint. See
``docs/training.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

DEFAULT_OUT = Path("rpn_finetuned.safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rpn_core.training.types import TrainConfig

    d = TrainConfig()
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="annotated image folder")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument(
        "--mode",
        choices=("head", "partial", "full"),
        default=d.mode,
        help="what trains: the RPN head (default), + the last backbone stage, or everything",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="CKPT",
        help=f"checkpoint to write (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
    parser.add_argument("--weights", type=Path, help="start from these weights (default: embedded)")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this")
    parser.add_argument("--no-augment", action="store_true", help="no flips or scale jitter")
    parser.add_argument(
        "--anchor-sizes", type=float, nargs="+", metavar="PX",
        help="train with these anchor sizes (e.g. from 'rpn-studio anchors'; stride 16): "
        "each new anchor starts from the weights of the closest old shape",
    )  # fmt: skip
    parser.add_argument(
        "--anchor-ratios", type=float, nargs="+", metavar="H/W",
        help="with --anchor-sizes: aspect ratios h/w (default: the model's)",
    )  # fmt: skip
    parser.add_argument(
        "--labels", choices=("guide", "faster-rcnn"), default=None,
        help="label anchors for the loss by this rule (default: the model's own); the "
        "checkpoint records it",
    )  # fmt: skip
    parser.add_argument(
        "--input-size", type=int, metavar="PX",
        help="train (and then propose) at this input size: the SSD's square side, or a "
        "MobileNetV2 model's shorter side (default: the model's; larger reaches smaller objects)",
    )  # fmt: skip
    parser.add_argument("--format", dest="fmt", help="annotation format (default: detect)")
    parser.add_argument("--recursive", action="store_true", help="include sub-folders")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace, device: str):  # noqa: ANN202 - TrainConfig, lazily
    from rpn_core.training.types import TrainConfig

    aug = (
        {"hflip": False, "scale_jitter": (1.0, 1.0), "augment_copies": 1} if args.no_augment else {}
    )
    return TrainConfig(
        mode=args.mode, epochs=args.epochs, max_steps=args.max_steps, lr=args.lr,
        batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed,
        time_budget_s=args.time_budget, device=device, recall_top_n=(100, 300), **aug,
    )  # fmt: skip


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def progress_line(record, width: int = 24) -> str:  # noqa: ANN001 - a train.Progress
    """One progress-bar line for a :class:`~rpn_core.training.types.Progress` record."""
    frac = record.step / max(1, record.total_steps)
    bar = "#" * round(frac * width) + "." * (width - round(frac * width))
    if record.phase == "prepare":
        return f"[{bar}] caching {record.step}/{record.total_steps} {record.message}"
    if record.phase == "validate":
        r07 = record.recall.get("recall@100/0.7", math.nan)
        return f"[{bar}] step {record.step}: val loss {record.val_total:.4f}, R@100/0.7 {r07:.3f}"
    return (
        f"[{bar}] step {record.step}/{record.total_steps} ep {record.epoch} "
        f"loss {record.total:.4f} (cls {record.loss_cls:.4f} reg {record.loss_reg:.4f}) "
        f"lr {record.lr:.2g} {record.images_per_s:.1f} img/s ETA {_clock(record.eta_s)}"
    )


def _show(record, tty: bool) -> None:  # noqa: ANN001
    line = progress_line(record)
    if tty and record.phase in ("prepare", "train"):
        print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
    elif record.phase == "validate" or not tty and record.step % 10 == 0:
        print(("\r" if tty else "") + line, file=sys.stderr, flush=True)


def format_metrics(result) -> str:  # noqa: ANN001 - a TrainResult
    lines = [f"{'metric':<18}{'before':>9}{'after':>9}"]
    for key, before in result.metrics_before.items():
        after = result.metrics_after.get(key, math.nan)
        lines.append(f"{key:<18}{before:>9.3f}{after:>9.3f}")
    if result.metrics_after:
        lines.append(
            f"'after' is the best validation checkpoint, step {result.best_step} of {result.steps}"
        )
    if result.improved is False:
        lines.append(
            "warning: the fine-tuned weights do not beat the starting weights on the "
            "validation images; keep using the old ones"
        )
    s = result.data_summary
    lines.append(
        f"{s['train_images']} training / {s['validation_images']} validation images, "
        f"{result.steps} steps ({result.epochs:.1f} epochs, {result.stopped}) "
        f"in {result.seconds:.1f} s"
    )
    return "\n".join(lines)


def _load(args: argparse.Namespace, device: str):  # noqa: ANN202
    from rpn_core.anchors.design import level_strides, nearest_levels
    from rpn_core.anchors.grid import AnchorConfig
    from rpn_core.anchors.labelling import LabelConfig
    from rpn_core.cli._model import load_cli_model
    from rpn_core.rpn.adapt import with_anchors, with_input_size, with_labels

    model = load_cli_model(args, device)
    if getattr(args, "input_size", None):
        model = with_input_size(model, args.input_size)
    if getattr(args, "labels", None):
        model = with_labels(model, LabelConfig.preset(args.labels))
    if args.anchor_sizes or args.anchor_ratios:
        current = model.config.anchors
        sizes = tuple(args.anchor_sizes or current.sizes)
        # New sizes go to the model's levels by the design rule (below 64 px: stride 8); on
        # the SSD's six levels each joins the level of the nearest current sizes.
        if not args.anchor_sizes:
            strides = current.strides
        elif model.config.is_ssd:
            strides = nearest_levels(sizes, current)
        else:
            strides = level_strides(sizes, tuple(lv.stride for lv in current.levels))
        anchors = AnchorConfig(
            sizes=sizes,
            aspect_ratios=tuple(args.anchor_ratios or current.aspect_ratios),
            stride=max(strides),
            size_strides=strides,
            centring=current.centring,
        )  # ValueError (exit 2) names a bad value
        model = with_anchors(model, anchors)
    return model


def run(args: argparse.Namespace) -> int:
    from rpn_core.annotation.dataset import load_dataset

    dataset = load_dataset(args.data_dir, args.fmt, recursive=args.recursive)
    for path, reason in dataset.unreadable + dataset.problems:
        print(f"warning: {path}: {reason}", file=sys.stderr)
    items = dataset.annotated
    if not items:
        print(f"error: no annotated images in {args.data_dir}", file=sys.stderr)
        return 2
    from rpn_core.training.data import as_samples, cap_notes

    for note in cap_notes(as_samples(items)):  # said before the (long) run starts
        print(f"warning: {note}", file=sys.stderr)
    import torch

    from rpn_core.rpn.checkpoint import save_checkpoint
    from rpn_core.rpn.weights import WeightsError
    from rpn_core.training.engine import init_distributed
    from rpn_core.training.finetune import TrainingError, fine_tune

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dist, device = init_distributed(device)
    try:
        config = _config(args, device)
        if dist.is_main:
            from rpn_core.training.types import data_warnings, plan_split

            for text in data_warnings(*plan_split(items, config)):
                print(f"warning: {text}", file=sys.stderr)
        model = _load(args, device)
        tty = sys.stderr.isatty() and not args.quiet
        result = None
        for record in fine_tune(model, items, config):
            if dist.is_main and not args.quiet:
                _show(record, tty)
            result = record.result or result
        if not dist.is_main:
            return 0
        if tty:
            print(file=sys.stderr)
        save_checkpoint(model, args.out, result=result, extra={"source": str(args.data_dir)})
        print(format_metrics(result))
        print(f"checkpoint: {args.out}")
        if args.json:
            metrics = {"before": result.metrics_before, "after": result.metrics_after,
                       "final": result.metrics_final, "best_step": result.best_step,
                       "improved": result.improved,
                       "steps": result.steps, "stopped": result.stopped}  # fmt: skip
            args.json.write_text(json.dumps(metrics, indent=2) + "\n")
        return 0
    except (TrainingError, WeightsError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.active:
            import torch.distributed as tdist

            tdist.destroy_process_group()
