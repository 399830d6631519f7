"""NMTune's three regularisers on the tuned features ``Z`` (paper, journal version, Section 6.1).

``L = L_CE + lam * (w_mse L_MSE + w_cov L_COV + w_svd L_SVD)`` with, for a batch of ``M``
pre-trained features ``F`` and tuned features ``Z`` (both ``M x D``):

* :func:`consistency_mse`, Eq. (4): ``|| F/||F||_2 - Z/||Z||_2 ||^2``. The paper leaves the
  norm's axis and the reduction implicit; nml normalises each sample's feature vector to unit
  L2 norm and averages the squared distance over the ``M`` samples (``= 2 - 2 * mean cos``).
* :func:`covariance_loss`, Eq. (5): ``(1/D) sum_{i != j} C(Z)_ij^2`` with ``C`` the sample
  covariance (divisor ``M - 1``).
* :func:`dominant_singular_loss`, Eq. (6): ``-s_1(Z) / sum_j s_j(Z)`` of the raw (uncentred)
  ``Z``; with ``top_k = K`` the mean of the ``K`` largest singular values replaces ``s_1``
  (the top-K variant that App. C.2 of the ICLR version suggests and the authors' code uses).

The paper sets ``lam = 0.01`` and weights 1 (:class:`NMTuneLossConfig` defaults). The authors'
public code (:meth:`NMTuneLossConfig.authors_code`, ``variant="authors"``) averages L_MSE over
all ``M * D`` entries, weights the terms mse 1.0, cov 0.04, svd 0.001 with a top-5 SVD term
(its mean over the ``min(5, M, D)`` values present) and adds them to the cross-entropy with
no lambda (``lam = 1``).

**Exact and fast SVD term.** ``method="exact"`` calls ``torch.linalg.svdvals``; on a GPU that
costs far more than the MLP step it regularises (the calibration run measured 8 ms against
0.55 ms on an H100). ``method="fast"`` uses matrix products only (plus a thin QR of an
``n x K`` block when ``K > 1``):

1. the Gram matrix ``G`` of ``Z`` on its smaller side (``n = min(M, D)``), squared six
   times to give ``G^64`` (a strong power-iteration operator) and, from its Frobenius
   norm, a guaranteed upper bound on ``s_1``;
2. block power iteration with ``G^64`` for the top singular direction (optionally warm
   started from the previous batch through a :class:`SpectralState`); for ``K > 1`` that
   direction is deflated from ``G`` and the other ``K - 1`` are found the same way with the
   deflated Gram (then refined with ``G^8`` and ``G^2`` so that steep spectra keep them), and
   the top-``K`` singular values and vectors come from the polar factor of ``Z V_K``;
3. the polar factor ``Q = U V^T`` of ``Z`` by Newton-Schulz iterations with minimax-optimal
   odd quintic polynomials (computed once per setting by linear programming); the nuclear
   norm is ``sum_j s_j = <Q, Z>``.

All of this runs under ``torch.no_grad``; the loss is then formed as
``-(1/K) <U_K V_K^T, Z> / <Q, Z>``. Because ``s_j = u_j^T Z v_j`` and ``||Z||_* = <Q, Z>`` are
maxima over ``u, v, Q`` (envelope theorem), the gradient of that expression with the factors
held fixed is the exact gradient when the factors are exact, and the backward pass costs a few
element-wise operations instead of a pass back through the iterations.

Limits, measured: (1) directions whose singular value is below ``ns_floor * s_1`` are not
resolved by the ``ns_steps`` Newton-Schulz steps (they count with a weight below 1 in the
nuclear norm; e.g. ``s_i = exp(-i/20)`` on 256 values, where ``s_256/s_1 = 3e-6``, gives
a gradient cosine of 0.98 while the loss stays within 2e-5);
(2) the top-``K`` vectors converge like ``(s_{K+1}/s_K)^(128 * power_iters)``, so when
``s_{K+1}/s_K > 0.998`` (near-degenerate values, where the exact gradient itself flips under
a 0.1 % perturbation) the gradient direction can differ while the loss value stays accurate.
The tests check the targets (loss within 1e-3 relative, gradient cosine >= 0.999) on Gaussian,
power-law (``s_i ~ i^-1.5``) and exponential (``exp(-i/40)``) spectra, 256 x 512 and 512 x 192.

**Precision.** Every term casts ``Z`` (and ``F``) to float32 and disables autocast inside, so
the terms are stable under bf16 autocast.

**Degenerate batches never give NaN:** the covariance term is 0 when ``M < 2`` (the sample
covariance is undefined); the SVD term is 0 for an all-zero or empty ``Z`` (``0/0``); a zero
feature row is normalised to the zero vector in the MSE term. A rank-1 ``Z`` is not degenerate:
its SVD term is ``-1/K`` (``-1`` for ``K = 1``), and a single row (``M = 1``) likewise.

Used by chapters 04_lora, 06_nmtune, 10_runtime and 11_ablations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as nnf

from .config import Config, check_range
from .errors import ConfigError, DataError
from .vocab import PAPER_LAMBDA

__all__ = ["consistency_mse", "covariance_loss", "dominant_singular_loss", "NMTuneLossConfig",
           "SpectralState", "nmtune_regularizer", "polar_schedule", "FAST_ROUTES", "fast_route"]

# Squarings of the Gram matrix before power iteration: G^(2^6) = G^64. Two jobs:
# (1) the Frobenius norm of G^p bounds s_1^2 from above with an overestimate of at most
#     n^(1/(2p)), so s_1 is overestimated by at most n^(1/256) (2.2 % for n = 256) and the
#     Newton-Schulz input's largest singular value lies in [0.978, 1];
# (2) each power step damps the next singular direction by (s_{K+1}/s_K)^128, enough for the
#     near-degenerate top of a Gaussian matrix (s_2/s_1 ~ 0.99).
_POWER_SQUARINGS = 6
# Relative margin on that upper bound for float32 rounding in the squarings.
_BOUND_MARGIN = 1e-3
# For top_k > 1, G^64 keeps only directions with (s_j/s_1)^128 above float32 rounding; on a
# fast-decaying spectrum (s_5/s_1 = 0.09 for s_i ~ i^-1.5) it wipes s_2..s_K out of the block.
# Such spectra have wide gaps, so lower powers converge fast there: the block is refined with
# G^8 (4 steps) and then G^2 (8 steps), whose rounding keeps (s_K/s_1)^4 >= 6e-5 on that spectrum.
# (level j means G^(2^j); measured on Gaussian, power-law and exponential spectra in the tests.)
_REFINE_CASCADE: tuple[tuple[int, int], ...] = ((3, 4), (1, 8))


@contextlib.contextmanager
def _float32_region(t: torch.Tensor):
    """Disable autocast so matmuls run in float32 even inside a bf16 autocast region."""
    device_type = t.device.type if t.device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def _check_matrix(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name} must be a torch tensor (M x D), got {type(x).__name__}")
    if x.dim() != 2:
        raise DataError(f"{name} must be a 2-D batch of features (M x D), got shape "
                        f"{tuple(x.shape)}; flatten or pool the features first")


_NORMALIZE_EPS = 1e-12    # torch.nn.functional.normalize's default eps


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A float32 zero that stays connected to ``x``'s graph (so backward() still works)."""
    return x.float().sum() * 0.0


def consistency_mse(F: torch.Tensor, Z: torch.Tensor, *,
                    reduction: Literal["sample", "element"] = "sample") -> torch.Tensor:
    """L_MSE (paper Eq. 4) between the row-normalised ``F`` and ``Z``.

    Each sample's feature vector is L2-normalised (a zero row stays zero). ``reduction``:

    * ``"sample"`` (nml's reading of the paper): the squared distance summed over the ``D``
      dimensions and averaged over the ``M`` samples, so the value lies in [0, 4] and equals
      ``2 - 2 * mean cosine(f_i, z_i)`` for non-zero rows;
    * ``"element"`` (the authors' code, a mean-squared-error module): averaged over all
      ``M * D`` entries, i.e. the ``"sample"`` value divided by ``D``.

    ``F`` and ``Z`` must have the same shape (NMTune's MLP maps D -> 4D -> D). 0 for an empty
    batch.

    Used by chapters 04_lora, 06_nmtune and 11_ablations.
    """
    _check_matrix("F", F)
    _check_matrix("Z", Z)
    if F.shape != Z.shape:
        raise DataError(f"consistency_mse needs F and Z of the same shape, got {tuple(F.shape)} "
                        f"and {tuple(Z.shape)}; the tuned features must keep the dimension D")
    if reduction not in ("sample", "element"):
        raise ConfigError(f"reduction must be 'sample' or 'element', got {reduction!r}")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        return _zero_like_graph(Z)
    with _float32_region(Z):
        f = nnf.normalize(F.float(), dim=1)
        if F.requires_grad:
            z = nnf.normalize(Z.float(), dim=1)
            sq = (f - z).pow(2)
            return sq.mean() if reduction == "element" else sq.sum(dim=1).mean()
        return _UnitRowDistance.apply(f, Z.float(), reduction == "element")


class _UnitRowDistance(torch.autograd.Function):
    """:func:`consistency_mse` for a fixed ``F`` (NMTune's frozen features) with its gradient
    in closed form: three element-wise passes instead of autograd's trip back through the
    normalisation (measured by ``python -m nml bench nmtune-speed``)."""

    @staticmethod
    def forward(ctx, f: torch.Tensor, z: torch.Tensor, element: bool) -> torch.Tensor:
        norm = torch.linalg.vector_norm(z, dim=1, keepdim=True)
        scale = norm.clamp_min(_NORMALIZE_EPS)            # as nnf.normalize: z / max(|z|, eps)
        zn = z / scale
        diff = f - zn
        divisor = z.numel() if element else z.shape[0]
        ctx.save_for_backward(zn, diff, scale, norm > _NORMALIZE_EPS)
        ctx.divisor = divisor
        return diff.pow(2).sum() / divisor

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        zn, diff, scale, above = ctx.saved_tensors
        grad_zn = diff * (-2.0 / ctx.divisor) * grad_out
        # d(z / |z|)/dz = (I - zn zn^T) / |z|; below eps normalize divides by eps (linear)
        radial = torch.where(above, (zn * grad_zn).sum(dim=1, keepdim=True), 0.0)
        return None, (grad_zn - zn * radial) / scale, None


def covariance_loss(Z: torch.Tensor) -> torch.Tensor:
    """L_COV (paper Eq. 5): ``(1/D) sum_{i != j} C(Z)_ij^2``, ``C`` the sample covariance (M-1).

    Computed as ``(||Zc^T Zc||_F^2 - sum_i (Zc^T Zc)_ii^2) / ((M-1)^2 D)`` with the Frobenius
    norm taken on the smaller Gram matrix (``||Zc^T Zc||_F = ||Zc Zc^T||_F``), so a batch of
    256 x 512 costs a 256 x 256 product. 0 when ``M < 2`` (covariance undefined).

    Used by chapters 04_lora, 06_nmtune and 11_ablations.
    """
    _check_matrix("Z", Z)
    M, D = Z.shape
    if M < 2 or D == 0:
        return _zero_like_graph(Z)
    with _float32_region(Z):
        return _OffDiagonalCovariance.apply(Z.float())


class _OffDiagonalCovariance(torch.autograd.Function):
    """:func:`covariance_loss` with its gradient in closed form: one matrix product in the
    backward pass where autograd takes two (one per factor of the Gram matrix), the term's
    main cost on a CPU (``python -m nml bench nmtune-speed``)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        M, D = z.shape
        zc = z - z.mean(dim=0, keepdim=True)
        gram = zc @ zc.mT if M <= D else zc.mT @ zc
        diag = zc.pow(2).sum(dim=0)                     # (M-1) * variances
        off = gram.pow(2).sum() - diag.pow(2).sum()
        scale = 1.0 / ((M - 1) ** 2 * D)
        ctx.save_for_backward(zc, gram, diag, off > 0)
        ctx.scale = scale
        return off.clamp_min(0.0) * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        zc, gram, diag, positive = ctx.saved_tensors
        # d||Zc^T Zc||_F^2 / dZc = 4 Zc Zc^T Zc and d sum_d diag_d^2 / dZc = 4 Zc diag(diag).
        # Both have zero column means (1^T Zc = 0), so the centring passes them through.
        cubic = gram @ zc if zc.shape[0] <= zc.shape[1] else zc @ gram
        factor = torch.where(positive, grad_out * (4.0 * ctx.scale), torch.zeros_like(grad_out))
        return (cubic - zc * diag) * factor


# ------------------------------------------------------------------------------------------
# fast spectral estimates
# ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def polar_schedule(floor: float, steps: int) -> tuple[tuple[float, float, float], ...]:
    """Coefficients ``(a, b, c)`` of ``steps`` odd quintics ``p(x) = a x + b x^3 + c x^5``.

    Step ``t``'s polynomial is the minimax (best uniform) approximation of 1 on the interval
    ``[l_t, u_t]`` that the previous steps map ``[floor, 1]`` to, found by linear programming on
    a dense grid (greedy composition, as in "Polar Express", Amsel et al. 2025). Composed, they
    map every singular value in ``[floor, 1]`` to within ``err`` of 1; once ``err < 1e-6`` the
    classical quintic Newton-Schulz step ``(15x - 10x^3 + 3x^5)/8`` (fixed point 1, flat there)
    takes over. Cached per ``(floor, steps)``.

    Used by chapters 06_nmtune and 10_runtime (through :func:`dominant_singular_loss`).
    """
    import numpy as np
    from scipy.optimize import linprog

    if not 0 < floor < 1 or steps < 1:
        raise ConfigError(f"polar_schedule needs 0 < floor < 1 and steps >= 1, got floor={floor},"
                          f" steps={steps}")
    lo, hi = float(floor), 1.0
    out = []
    for _ in range(steps):
        err = max(1.0 - lo, hi - 1.0)
        if err < 1e-6:
            coeffs = (15 / 8, -10 / 8, 3 / 8)
        else:
            x = np.unique(np.concatenate([np.geomspace(lo, hi, 1500), np.linspace(lo, hi, 1500)]))
            basis = np.stack([x, x ** 3, x ** 5], axis=1)
            ones = np.ones((len(x), 1))
            # variables (a, b, c, t): minimise t subject to |1 - p(x_i)| <= t on the grid
            a_ub = np.vstack([np.hstack([basis, -ones]), np.hstack([-basis, -ones])])
            b_ub = np.concatenate([np.ones(len(x)), -np.ones(len(x))])
            res = linprog(np.array([0.0, 0.0, 0.0, 1.0]), A_ub=a_ub, b_ub=b_ub,
                          bounds=[(None, None)] * 4, method="highs")
            if not res.success:
                raise RuntimeError(f"minimax fit for the Newton-Schulz schedule failed: "
                                   f"{res.message}")
            coeffs = tuple(float(v) for v in res.x[:3])
        grid = np.unique(np.concatenate([np.geomspace(lo, hi, 4000), np.linspace(lo, hi, 4000)]))
        p = coeffs[0] * grid + coeffs[1] * grid ** 3 + coeffs[2] * grid ** 5
        new_lo, new_hi = float(p.min()), float(p.max())
        # widen the next interval slightly: the grid can miss the extremes between its points
        lo = new_lo - 0.01 * min(abs(1.0 - new_lo), new_lo)
        hi = new_hi + 0.01 * abs(new_hi - 1.0)
        out.append(coeffs)
    return tuple(out)


def _newton_schulz(x: torch.Tensor, schedule) -> torch.Tensor:
    """Apply the odd quintics to a tall ``m x n`` matrix (m >= n) with singular values <= 1."""
    for a, b, c in schedule:
        gram = x.mT @ x                                   # n x n, the cheap side
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)   # b A + c A^2
        x = torch.addmm(x, x, poly, beta=a)                # a X + X (b A + c A^2)
    return x


def _polar_small(y: torch.Tensor, schedule) -> torch.Tensor:
    """Polar factor of a tall ``m x k`` matrix (k small), normalised by its Frobenius norm."""
    norm = torch.linalg.vector_norm(y)
    y = y / norm.clamp_min(torch.finfo(y.dtype).tiny)
    return _newton_schulz(y, schedule)


def _orthonormalise(v: torch.Tensor) -> torch.Tensor:
    if v.shape[1] == 1:
        return v / torch.linalg.vector_norm(v).clamp_min(torch.finfo(v.dtype).tiny)
    return torch.linalg.qr(v).Q


class SpectralState:
    """Optional warm start for the fast SVD term: the previous batch's top-K right singular
    vectors (feature side, ``D x K``), which change little between batches.

    Create one per training run and pass it to :func:`dominant_singular_loss` or
    :func:`nmtune_regularizer` on every step; ``None`` (the default there) means a cold start.

    Used by chapters 06_nmtune and 10_runtime.
    """

    def __init__(self) -> None:
        self.vectors: torch.Tensor | None = None

    def reset(self) -> None:
        self.vectors = None


_START_CACHE: dict = {}


def _start_block(n: int, k: int, device, dtype) -> torch.Tensor:
    """A fixed pseudo-random start block (seeded, so the fast loss is deterministic)."""
    key = (n, k, str(device), dtype)
    if key not in _START_CACHE:
        gen = torch.Generator(device="cpu").manual_seed(0)
        _START_CACHE[key] = torch.randn(n, k, generator=gen, dtype=torch.float64).to(
            device=device, dtype=dtype)
    return _START_CACHE[key]


def _gram_powers(gram: torch.Tensor):
    """``[G, G^2, G^4, ..., G^(2^q)]`` Frobenius-normalised, the log of an upper bound on
    ``s_1^2`` (``log ||G^p||_F / p``) and ``||G||_F``. Normalising by the norm rather than the
    trace keeps a deflated Gram whose trace rounds to <= 0 from blowing up."""
    tiny = torch.finfo(gram.dtype).tiny
    norm0 = torch.linalg.matrix_norm(gram)
    op = gram / norm0.clamp_min(tiny)
    powers = [op]
    log_bound = torch.log(norm0.clamp_min(tiny))
    for j in range(1, _POWER_SQUARINGS + 1):
        op = op @ op
        nrm = torch.linalg.matrix_norm(op).clamp_min(tiny)
        op = op / nrm
        powers.append(op)
        log_bound = log_bound + torch.log(nrm) / (2 ** j)
    return powers, log_bound, norm0


def _power_block(powers, start: torch.Tensor, iters: int, refine: bool) -> torch.Tensor:
    """Block power iteration with G^64; with ``refine``, then the lower-power cascade."""
    v = _orthonormalise(powers[-1] @ start)
    for _ in range(max(iters - 1, 0)):
        v = _orthonormalise(powers[-1] @ v)
    if refine:
        for level, steps in _REFINE_CASCADE:
            for _ in range(steps):
                v = _orthonormalise(powers[level] @ v)
    return v


@torch.no_grad()
def _fast_factors(z: torch.Tensor, top_k: int, power_iters: int, ns_steps: int,
                  ns_floor: float, state: SpectralState | None):
    """Detached factors (top-K partial isometry U_K V_K^T and polar factor Q) of float32 ``z``."""
    M, D = z.shape
    transposed = M < D
    x = z.mT if transposed else z                        # tall: m x n, n = min(M, D)
    n = x.shape[1]
    k = min(top_k, n)
    tiny = torch.finfo(x.dtype).tiny

    gram = x.mT @ x                                       # n x n
    powers, log_bound, gram_norm = _gram_powers(gram)
    s1_bound = torch.exp(0.5 * log_bound) * (1.0 + _BOUND_MARGIN)
    s1_bound = torch.where(gram_norm > 0, s1_bound, torch.ones_like(s1_bound))

    # top-K subspace on the n side, warm started from the feature-side vectors when given
    start = None
    if state is not None and state.vectors is not None and state.vectors.shape == (D, k) \
            and state.vectors.device == z.device:
        start = z @ state.vectors if transposed else state.vectors.to(z.dtype)
    if start is None:
        start = _start_block(n, k, z.device, z.dtype)
    v = _power_block(powers, start[:, :1], power_iters, refine=False)
    if k > 1:
        # Deflate the dominant direction, then find the other K-1 with the deflated Gram.
        # Real features have one large s_1 (their mean) over a flat bulk; without deflation
        # G^64 rounds the bulk away and low powers cannot separate its near-equal values.
        gv = gram @ v
        deflated = gram - gv @ v.mT - v @ gv.mT + (v.mT @ gv) * (v @ v.mT)
        rest = start[:, 1:] - v @ (v.mT @ start[:, 1:])
        w = _power_block(_gram_powers(deflated)[0], rest, power_iters, refine=True)
        w = w - v @ (v.mT @ w)
        v = _orthonormalise(torch.cat([v, w], dim=1))

    schedule = polar_schedule(ns_floor, ns_steps)
    y = x @ v                                            # m x k
    if k == 1:
        u = y / torch.linalg.vector_norm(y).clamp_min(tiny)
    else:
        u = _polar_small(y, schedule)
    top = u @ v.mT                                       # m x n partial isometry U_K V_K^T

    q = _newton_schulz(x / s1_bound, schedule)           # m x n polar factor

    if state is not None:
        feat = u if transposed else v                    # D x k: the feature-side vectors
        state.vectors = _orthonormalise(feat).detach()

    if transposed:
        return top.mT, q.mT, k
    return top, q, k


#: How the fast term is evaluated on each device type, picked by measurement
#: (``python -m nml bench nmtune-speed`` times both routes side by side; see FAST_ROUTES_MEASURED).
#: Both routes compute the same estimator (same bound, same Newton-Schulz polynomials, the top-K
#: directions to convergence) and agree to float32 rounding (tests/test_losses.py):
#: ``"matmul"`` by matrix products (module docstring), ``"eigh"`` through one symmetric
#: eigendecomposition of the small Gram matrix, applying the polynomials to its eigenvalues.
FAST_ROUTES: dict[str, str] = {"cpu": "eigh", "cuda": "matmul"}
#: The measurements behind FAST_ROUTES (one torch thread, batch 256 x 512, the shared 2-core dev
#: CPU at load 13-15, medians of 20 interleaved steps): the SVD term's forward + backward took
#: 63 ms by matmul and 31 ms by eigh (float64), the whole NMTune step 1.57x then 1.32x an MLP
#: step. Re-measured on the idle machine (``bench nmtune-speed``, 200 steps): 1.46x (matmul)
#: against 1.29x (eigh) with one thread, 1.45x against 1.42x with two, where the matmul
#: route's products use both cores and LAPACK's eigh uses one. On CUDA an eigendecomposition is a solver call with host synchronisation, so the
#: launch-only matmul route stays there until lease priority 2 times both routes on a GPU.
FAST_ROUTES_MEASURED = {"cpu": {"matmul_ms": 63.0, "eigh_ms": 31.0}}


def fast_route(device: torch.device | str) -> str:
    """The evaluation route of the fast SVD term on ``device`` (:data:`FAST_ROUTES`).

    Used by chapter 10_runtime (the benchmark reports both routes).
    """
    kind = torch.device(device).type
    return FAST_ROUTES.get(kind, "matmul")


@torch.no_grad()
def _fast_factors_eigh(z: torch.Tensor, top_k: int, ns_steps: int, ns_floor: float,
                       state: SpectralState | None):
    """:func:`_fast_factors` evaluated through ``eigh`` of the ``n x n`` Gram matrix.

    With ``G = W diag(lam) W^T``, every matrix of the Newton-Schulz iteration is a polynomial
    in ``G``: ``Q = X W diag(prod_t p_t(x_t^2) / s1_bound) W^T`` with ``x_0^2 = lam /
    s1_bound^2`` and ``x_{t+1}^2 = x_t^2 p_t(x_t^2)^2``, a polynomial in ``lam`` (finite at 0);
    the bound is the same ``||G^64||_F^(1/64)`` the matmul route forms by squaring, here from
    the eigenvalues; the top-K vectors are ``eigh``'s (the matmul route's power iteration
    converges to them)."""
    M, D = z.shape
    transposed = M < D
    x = z.mT if transposed else z
    n = x.shape[1]
    k = min(top_k, n)
    # float64: eigenvalues of the Gram are squared singular values, so float32 would lose
    # every s_j below sqrt(eps) s_1 = 2.4e-4 s_1 (the matmul route resolves them to ns_floor).
    x64 = x.double()
    tiny = torch.finfo(x64.dtype).tiny
    try:
        lam, w = torch.linalg.eigh(x64.mT @ x64)         # ascending
    except torch.linalg.LinAlgError:
        # LAPACK gives up on a Gram with inf / huge entries (a diverging run): the matmul route
        # computes the same estimate without it, and the divergence guards then name the cause.
        return _fast_factors(z, top_k, 10, ns_steps, ns_floor, state)
    lam = lam.clamp_min(0.0)
    lmax = lam[-1]
    power = 2 ** (_POWER_SQUARINGS + 1)                  # ||G^64||_F = (sum lam^128)^(1/2)
    ratio_sum = (lam / lmax.clamp_min(tiny)).pow(power).sum()
    s1_sq_bound = lmax * ratio_sum.pow(1.0 / power)
    s1_bound = torch.sqrt(s1_sq_bound) * (1.0 + _BOUND_MARGIN)
    s1_bound = torch.where(lmax > 0, s1_bound, torch.ones_like(s1_bound))
    x2 = lam / s1_bound ** 2
    prod = torch.ones_like(lam)
    for a, b, c in polar_schedule(ns_floor, ns_steps):
        p = a + b * x2 + c * x2 * x2
        prod = prod * p
        x2 = x2 * p * p
    # in float64 too: prod is large (up to ~1/ns_floor) on null directions, where the product
    # must cancel to the tiny g(x) of those directions
    q = (x64 @ ((w * (prod / s1_bound)) @ w.mT)).to(x.dtype)    # m x n polar factor
    v = w[:, -k:].flip(1)                                # top-K right vectors, descending
    y = x64 @ v
    u = y / torch.linalg.vector_norm(y, dim=0, keepdim=True).clamp_min(tiny)
    top = (u @ v.mT).to(x.dtype)
    u, v = u.to(x.dtype), v.to(x.dtype)
    if state is not None:
        feat = u if transposed else v
        state.vectors = _orthonormalise(feat).detach()
    if transposed:
        return top.mT, q.mT, k
    return top, q, k


def dominant_singular_loss(Z: torch.Tensor, *, top_k: int = 1,
                           method: Literal["fast", "exact"] = "fast", power_iters: int = 10,
                           ns_steps: int = 8, ns_floor: float = 1e-4,
                           state: SpectralState | None = None,
                           clip_k: bool = False, route: str | None = None) -> torch.Tensor:
    """L_SVD (paper Eq. 6): ``-(mean of the top_k singular values of Z) / (sum of all of them)``.

    ``Z`` is the raw ``M x D`` batch (not centred). ``top_k = 1`` is the paper's ``-s_1/sum s``.
    When ``top_k`` exceeds ``n = min(M, D)``: by default the missing singular values are zero
    (the mean still divides by ``top_k``); with ``clip_k=True`` the mean is over the ``n``
    values present (divides by ``n``), as the authors' ``torch.mean(s[:5])`` does on a small
    last batch. ``method="exact"`` uses ``torch.linalg.svdvals``; ``"fast"``
    matrix products only (module docstring): ``power_iters`` block power steps with ``G^64``,
    ``ns_steps`` Newton-Schulz steps designed for singular values down to ``ns_floor * s_1``;
    ``state`` optionally warm-starts the power iteration across batches; ``route`` picks how
    the fast term is evaluated (``"matmul"`` or ``"eigh"``, the same estimator; ``None``: the
    device's faster one, :func:`fast_route`). Returns a float32 scalar; 0 for an all-zero or
    empty ``Z``.

    Used by chapters 04_lora, 06_nmtune, 10_runtime and 11_ablations.
    """
    _check_matrix("Z", Z)
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if method not in ("fast", "exact"):
        raise ConfigError(f"method must be 'fast' or 'exact', got {method!r}")
    if route not in (None, "matmul", "eigh"):
        raise ConfigError(f"route must be 'matmul', 'eigh' or None, got {route!r}")
    M, D = Z.shape
    if M == 0 or D == 0:
        return _zero_like_graph(Z)
    with _float32_region(Z):
        z = Z.float()
        if method == "exact":
            s = torch.linalg.svdvals(z)
            top_sum = s[:top_k].sum()
            total = s.sum()
        else:
            if (route or fast_route(z.device)) == "eigh":
                top, q, _ = _fast_factors_eigh(z.detach(), top_k, ns_steps, ns_floor, state)
            else:
                top, q, _ = _fast_factors(z.detach(), top_k, power_iters, ns_steps, ns_floor,
                                          state)
            top_sum = (top * z).sum()
            total = (q * z).sum()
        divisor = min(top_k, M, D) if clip_k else top_k
        positive = total > 0
        safe_total = torch.where(positive, total, torch.ones_like(total))
        return torch.where(positive, -(top_sum / divisor) / safe_total, torch.zeros_like(total))


# ------------------------------------------------------------------------------------------
# config and the combined regulariser
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NMTuneLossConfig(Config):
    """Weights and SVD-term settings of NMTune's regulariser (paper Eq. 7).

    Defaults are the paper's: ``lam = 0.01`` and every term weighted 1 with the top-1 SVD term.
    :meth:`authors_code` gives the regulariser exactly as the authors' public code computes it
    (``variant="authors"``).

    Used by chapters 04_lora, 06_nmtune, 10_runtime and 11_ablations.
    """

    # Fields added after results were stored: at their default they stay out of the hash.
    added_fields: ClassVar[tuple[str, ...]] = ("variant",)

    lam: float = PAPER_LAMBDA   # paper: "lambda = 0.01 for all experiments" (Sec. 6.1)
    w_mse: float = 1.0          # paper Eq. 7 weights every term 1
    w_cov: float = 1.0
    w_svd: float = 1.0
    top_k: int = 1              # paper Eq. 6: the largest singular value only
    svd_method: Literal["fast", "exact"] = "fast"   # fast: matmul-only estimate (module doc)
    power_iters: int = 10       # block power steps with G^64 (each damps by (s_{K+1}/s_K)^128)
    ns_steps: int = 8           # Newton-Schulz steps: enough for [ns_floor, 1] -> 1 +- 1e-5
    ns_floor: float = 1e-4      # smallest s_j / s_1 that the Newton-Schulz schedule resolves
    # paper: L_MSE summed over D and averaged over samples; top-k mean divides by k.
    # authors: L_MSE averaged over all M*D entries (torch.nn.MSELoss); top-k mean over the
    # min(k, M, D) values present (torch.mean(s[:5])). Both variants use the same COV term.
    variant: Literal["paper", "authors"] = "paper"

    def validate(self) -> None:
        super().validate()
        for name in ("lam", "w_mse", "w_cov", "w_svd"):
            check_range(name, getattr(self, name), 0.0, None)
        check_range("top_k", self.top_k, 1, None)
        check_range("power_iters", self.power_iters, 1, 100)
        check_range("ns_steps", self.ns_steps, 1, 50)
        check_range("ns_floor", self.ns_floor, 0.0, 1.0, lo_inclusive=False, hi_inclusive=False)

    @classmethod
    def authors_code(cls, **overrides) -> "NMTuneLossConfig":
        """The regulariser of the authors' public code (Hhhhhhao/Noisy-Model-Learning,
        ``src/models/nml_tune.py``): ``variant="authors"`` reductions, weights mse 1.0,
        cov 0.04, svd 0.001, the top-5 SVD term, and ``lam = 1.0`` (their terms are added
        straight to the cross-entropy, with no lambda). For LoRA + NMTune their code has no MSE
        term: ``authors_code(w_mse=0.0)``. The rest of their set-up (the head with BatchNorm and
        a learnable residual scale, two augmented views, the classifier's initialisation) is
        the tuner's: ``nml.tune.TuneConfig(variant="authors")``.

        Used by chapters 06_nmtune and 11_ablations.
        """
        return cls.from_dict({"variant": "authors", "lam": 1.0, "w_mse": 1.0, "w_cov": 0.04,
                              "w_svd": 0.001, "top_k": 5}, **overrides)


def nmtune_regularizer(F: torch.Tensor, Z: torch.Tensor, cfg: NMTuneLossConfig | None = None,
                       *, state: SpectralState | None = None, mse_z: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """``w_mse L_MSE + w_cov L_COV + w_svd L_SVD`` and the three terms as floats.

    Not multiplied by ``cfg.lam``: the caller forms ``L_CE + cfg.lam * reg``. ``F`` are the
    frozen pre-trained features, ``Z`` the tuned ones: L_COV and L_SVD are taken on ``Z``, and
    L_MSE compares ``F`` with ``mse_z`` (default ``Z``; same shape as ``F``). The authors'
    two-view batch passes ``Z`` = both views stacked (2M rows), ``F`` = view 1's pre-trained
    features and ``mse_z`` = view 2's tuned features. ``cfg.variant`` picks the reductions
    (:class:`NMTuneLossConfig`). Every term is computed and reported, whatever its weight. The
    dict has keys ``"mse"``, ``"cov"``, ``"svd"`` (unweighted values; one device sync).

    Used by chapters 04_lora, 06_nmtune, 10_runtime and 11_ablations.
    """
    cfg = cfg if cfg is not None else NMTuneLossConfig()
    authors = cfg.variant == "authors"
    parts = {
        "mse": consistency_mse(F, Z if mse_z is None else mse_z,
                               reduction="element" if authors else "sample"),
        "cov": covariance_loss(Z),
        "svd": dominant_singular_loss(Z, top_k=cfg.top_k, method=cfg.svd_method,
                                      power_iters=cfg.power_iters, ns_steps=cfg.ns_steps,
                                      ns_floor=cfg.ns_floor, state=state, clip_k=authors),
    }
    weights = {"mse": cfg.w_mse, "cov": cfg.w_cov, "svd": cfg.w_svd}
    total = sum(weights[name] * value for name, value in parts.items())
    values = torch.stack([p.detach() for p in parts.values()]).tolist()
    floats = {name: float(v) for name, v in zip(parts, values)}
    if not all(math.isfinite(v) for v in floats.values()):
        raise DataError(f"NMTune regulariser is not finite ({floats}); the features Z contain "
                        f"NaN or inf (check the learning rate / the features)")
    return total, floats
