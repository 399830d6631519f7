"""``python -m nml bench nmtune-speed``: what NMTune's regulariser costs on top of MLP tuning.

The calibration run (H100) found NMTune 7x slower than MLP tuning because ``torch.linalg.svdvals``
on a 256 x 512 batch cost 8 ms against 0.55 ms for the whole MLP step; the paper reports about
+3 %. This benchmark times, in one run on the same synthetic features, three tuners with the
paper's black-box architecture (MLP D -> 4D -> D with ReLU, linear head, AdamW lr 1e-3, weight
decay 1e-4):

* ``mlp``: cross-entropy only (MLP tuning);
* ``nmtune_exact``: ``L_CE + 0.01 (L_MSE + L_COV + L_SVD)`` with the SVD term from ``svdvals``;
* ``nmtune_fast``: the same with the fast SVD term (:mod:`nml.losses`), evaluated by the
  device's route (``losses.FAST_ROUTES``), and ``nmtune_fast_matmul`` / ``nmtune_fast_eigh``:
  the same estimator by each route, so that the faster route per device is a measurement.

The steps are run in interleaved blocks (mlp, exact, fast, then rotated) after a warm-up, so
background load hits all three alike; on CUDA every timed block ends with a synchronisation.
The fast term's loss is checked against the exact one on the fast run's own batches (outside
the timed region). A profile then times, interleaved on the fast run's last batch, where the
extra time goes: each term's forward + backward alone, and the one ``eigh`` call of the CPU
route (``term_*_ms``, ``eigh_ms``, against ``mlp_step_ms``).

Used by chapter 10_runtime.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as nnf
from torch import nn

from .. import losses
from ..losses import NMTuneLossConfig, SpectralState, dominant_singular_loss, nmtune_regularizer

__all__ = ["run"]

# nmtune_fast: the fast term by the device's route (losses.FAST_ROUTES); the two route
# variants time each evaluation of the same estimator side by side, the measurement that
# FAST_ROUTES records.
_METHODS = ("mlp", "nmtune_exact", "nmtune_fast", "nmtune_fast_matmul", "nmtune_fast_eigh")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synthetic_features(n: int, dim: int, num_classes: int, gen: torch.Generator):
    """Non-negative features with a decaying spectrum (like pooled ReLU CNN features) and
    labels from a random linear teacher."""
    scales = torch.arange(1, dim + 1, dtype=torch.float32).pow(-0.5)
    latent = torch.randn(n, dim, generator=gen) * scales
    mix, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
    feats = torch.relu(latent @ mix + 0.5)
    teacher = torch.randn(dim, num_classes, generator=gen)
    labels = ((feats - feats.mean(0)) @ teacher).argmax(dim=1)
    return feats, labels


class _Tuner:
    """One tuner: its own MLP + head + AdamW, all built from the same seed."""

    def __init__(self, method: str, dim: int, num_classes: int, device, seed: int):
        torch.manual_seed(seed)
        self.method = method
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(),
                                 nn.Linear(4 * dim, dim)).to(device)
        self.head = nn.Linear(dim, num_classes).to(device)
        self.opt = torch.optim.AdamW(list(self.mlp.parameters()) + list(self.head.parameters()),
                                     lr=1e-3, weight_decay=1e-4)
        method_name = "exact" if method == "nmtune_exact" else "fast"
        self.loss_cfg = NMTuneLossConfig(svd_method=method_name)
        self.state = SpectralState() if method.startswith("nmtune_fast") else None
        self.route = method.rsplit("_", 1)[1] if method.count("_") == 2 else None
        self.last_z: torch.Tensor | None = None

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        z = self.mlp(x)
        loss = nnf.cross_entropy(self.head(z), y)
        if self.method != "mlp":
            kind = x.device.type
            saved = losses.FAST_ROUTES.get(kind)
            if self.route is not None:
                losses.FAST_ROUTES[kind] = self.route
            try:
                reg, _ = nmtune_regularizer(x, z, self.loss_cfg, state=self.state)
            finally:
                if saved is None:
                    losses.FAST_ROUTES.pop(kind, None)
                else:
                    losses.FAST_ROUTES[kind] = saved
            loss = loss + self.loss_cfg.lam * reg
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.last_z = z.detach()


def _term_profile(z: torch.Tensor, f: torch.Tensor, cfg: NMTuneLossConfig, dev: torch.device,
                  reps: int) -> dict:
    """Median milliseconds of each regulariser term's forward + backward on ``z`` alone (the
    terms as :func:`nmtune_regularizer` calls them), and of the fast SVD term's ``eigh`` call
    when its route is ``eigh``; the terms interleave, so load hits them alike."""
    from ..losses import consistency_mse, covariance_loss

    def timed(fn) -> float:
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        return time.perf_counter() - t0

    def term(loss_of):
        def go():
            leaf = z.detach().clone().requires_grad_()
            loss_of(leaf).backward()
        return go

    gram = (z.detach().double() @ z.detach().double().mT) if z.shape[0] <= z.shape[1] else \
        (z.detach().double().mT @ z.detach().double())
    parts = {
        "term_mse_ms": term(lambda leaf: consistency_mse(f, leaf)),
        "term_cov_ms": term(covariance_loss),
        "term_svd_ms": term(lambda leaf: dominant_singular_loss(
            leaf, top_k=cfg.top_k, method="fast", power_iters=cfg.power_iters,
            ns_steps=cfg.ns_steps, ns_floor=cfg.ns_floor)),
        "eigh_ms": lambda: torch.linalg.eigh(gram),
    }
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for name, fn in parts.items():                    # warm-up
        fn()
    for _ in range(reps):
        for name, fn in parts.items():
            samples[name].append(timed(fn))
    out = {name: 1000.0 * sorted(v)[len(v) // 2] for name, v in samples.items()}
    if losses.fast_route(dev) != "eigh":
        out.pop("eigh_ms")
    return out


def run(device: str = "cpu", steps: int = 200, batch: int = 256, dim: int = 512,
        num_classes: int = 10, seed: int = 0) -> dict:
    """Wall time of ``steps`` MLP-tuning steps and NMTune steps (exact and fast SVD term).

    Returns ``{"mlp_s", "nmtune_exact_s", "nmtune_fast_s", "ratio_fast", "ratio_exact",
    "fast_route", "ratio_fast_matmul", "ratio_fast_eigh", "max_rel_err", "device", "steps",
    "batch", "dim", "torch", "mlp_step_ms", "term_mse_ms", "term_cov_ms", "term_svd_ms",
    "eigh_ms" (eigh route only)}``: seconds for ``steps`` timed
    steps of each tuner (after 5 warm-up steps each), the ratios to MLP tuning, and the largest
    relative error of the fast SVD term against ``svdvals`` over the fast run's timed batches,
    and the profile of :func:`_term_profile` next to the MLP step it adds to.

    Used by chapter 10_runtime.
    """
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    feats, labels = _synthetic_features(max(8 * batch, 2048), dim, num_classes, gen)
    feats, labels = feats.to(dev), labels.to(dev)
    order = torch.randint(0, feats.shape[0], (steps + 5, batch), generator=gen).to(dev)

    tuners = {m: _Tuner(m, dim, num_classes, dev, seed) for m in _METHODS}
    for tuner in tuners.values():                      # warm-up: allocator, kernels, schedule cache
        for i in range(5):
            tuner.step(feats[order[i]], labels[order[i]])
    _sync(dev)

    blocks = 4 if steps >= 4 else 1
    bounds = [steps * b // blocks for b in range(blocks + 1)]
    seconds = {m: 0.0 for m in _METHODS}
    max_rel_err = 0.0
    cfg = tuners["nmtune_fast"].loss_cfg
    for b in range(blocks):
        rotated = _METHODS[b % len(_METHODS):] + _METHODS[:b % len(_METHODS)]
        for method in rotated:
            tuner = tuners[method]
            for i in range(bounds[b], bounds[b + 1]):
                idx = order[5 + i]
                _sync(dev)
                t0 = time.perf_counter()
                tuner.step(feats[idx], labels[idx])
                _sync(dev)
                seconds[method] += time.perf_counter() - t0
                if method == "nmtune_fast":            # accuracy check, not timed
                    z = tuner.last_z
                    exact = dominant_singular_loss(z, top_k=cfg.top_k, method="exact").item()
                    fast = dominant_singular_loss(
                        z, top_k=cfg.top_k, method="fast", power_iters=cfg.power_iters,
                        ns_steps=cfg.ns_steps, ns_floor=cfg.ns_floor).item()
                    if exact != 0.0:
                        max_rel_err = max(max_rel_err, abs(fast - exact) / abs(exact))
    profile = _term_profile(tuners["nmtune_fast"].last_z, feats[order[-1]], cfg, dev,
                            reps=max(10, steps // 10))
    return {
        **profile,
        "mlp_step_ms": 1000.0 * seconds["mlp"] / steps,
        "mlp_s": seconds["mlp"],
        "nmtune_exact_s": seconds["nmtune_exact"],
        "nmtune_fast_s": seconds["nmtune_fast"],
        "ratio_fast": seconds["nmtune_fast"] / seconds["mlp"],
        "ratio_exact": seconds["nmtune_exact"] / seconds["mlp"],
        "fast_route": losses.fast_route(dev),
        "ratio_fast_matmul": seconds["nmtune_fast_matmul"] / seconds["mlp"],
        "ratio_fast_eigh": seconds["nmtune_fast_eigh"] / seconds["mlp"],
        "max_rel_err": max_rel_err,
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "steps": steps, "batch": batch, "dim": dim, "torch": torch.__version__,
    }
