"""Guards against non-finite numbers: a run whose loss or weights turn NaN / inf stops at once,
and features holding NaN / inf are refused before any tuning starts; a device string that torch
would reject is refused in one line.

Without these, a diverged run finishes "normally" with chance accuracy and is stored like a good
one (and ``--recompute`` would replace a good stored unit with it). Raising here means
:meth:`nml.results.ResultStore.run` never reaches its write.

Used by chapter 01_noisy_pretraining (through :mod:`nml.pretrain` and :mod:`nml.clip`) and by
every tuning chapter, 02-06 and 08-11 (through :mod:`nml.tune`).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from .errors import ConfigError, DataError, DivergedError

__all__ = ["check_loss", "check_parameters", "check_features", "peak_lr", "torch_device",
           "check_device_param", "pick_device"]


def check_loss(value: float, *, what: str, epoch: int, lr: float, step: int | None = None) -> None:
    """Raise :class:`DivergedError` when the training loss ``value`` is NaN or infinite."""
    if not math.isfinite(value):
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        raise DivergedError(
            f"{what} diverged: the training loss became {value} at {where}; nothing was "
            f"stored. Lower the learning rate (it was {lr:g}) and run again")


def check_parameters(modules: Iterable[torch.nn.Module], *, what: str, epoch: int,
                     lr: float) -> None:
    """Raise :class:`DivergedError` when any trainable weight is NaN or infinite (a gradient
    that overflowed leaves non-finite weights behind even when the last loss was finite)."""
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad and not bool(torch.isfinite(p.detach()).all()):
                raise DivergedError(
                    f"{what} diverged: weight {name!r} holds NaN or inf after epoch {epoch} (a "
                    f"gradient overflowed); nothing was stored. Lower the learning rate (it was "
                    f"{lr:g}) and run again")


def check_features(features: torch.Tensor, what: str) -> None:
    """Raise :class:`DataError` when ``features`` hold NaN or inf (e.g. a damaged feature cache
    or a diverged backbone)."""
    if features.is_floating_point() and not bool(torch.isfinite(features).all()):
        bad = int((~torch.isfinite(features)).sum())
        raise DataError(
            f"{what} hold {bad} NaN / inf value(s); tuning on them would train on a NaN loss. "
            f"Delete the feature cache ($NML_CACHE/features) to re-extract them, or check the "
            f"pre-trained model")


def peak_lr(optimizer) -> float:
    """The schedule's peak learning rate (the one a user sets), not the current step's."""
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def check_device_param(device: str | None, name: str = "device") -> None:
    """One-line error for a ``device`` parameter that is not None, "cpu" or "cuda[:N]".
    Used by chapter 07's parameters and chapter 10's benchmark config."""
    if device is not None and device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"parameter {name!r} = {device!r} is unknown; use 'cpu', 'cuda' or None")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; ``None`` picks CUDA when a GPU is visible, else the CPU. A
    CUDA device asked for without a visible GPU is a one-line ConfigError.

    The one home of the device choice: pre-training (:func:`nml.training.resolve_device`), the
    chapters' pipeline (:class:`nml.experiments.Pipeline`) and chapter 07's grids
    (:func:`nml.practical.resolve_device`) all call it.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parsed = torch_device(device)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} was asked for but no CUDA GPU is visible; "
                          f"use device='cpu' or run on a GPU machine")
    return parsed


def torch_device(spec: str | torch.device) -> torch.device:
    """``spec`` as a :class:`torch.device`; a string torch rejects is a one-line ConfigError."""
    try:
        return torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {spec!r} is not a device torch knows; use 'cpu', 'cuda' or "
                          f"'cuda:<index>'") from None
