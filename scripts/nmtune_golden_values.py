"""Golden values of NMTune's regulariser, paper and authors' variants, in numpy float64.

An implementation of the formulas independent of ``nml.losses`` (numpy, float64, analytic
gradients checked here against central finite differences), on fixed small matrices made by a
formula (no random generator, so the numbers never depend on a library version). Its output is
pasted into ``tests/test_losses.py`` (``GOLDEN``); rerun it to see where they come from:

    .venv/bin/python scripts/nmtune_golden_values.py

The authors' formulas are those of Hhhhhhao/Noisy-Model-Learning, ``src/models/nml_tune.py``:
``MSELoss(normalize(Z_view2), normalize(F_view1))`` (mean over all M*D entries), the covariance
term ``sum offdiag(Zc^T Zc / (M-1))^2 / D`` and ``-mean(s[:5] / sum s)`` on both views stacked,
weights 1 / 0.04 / 0.001 added to the cross-entropy with no lambda. The paper's (journal
version, Eqs. 4-7, as nml reads them): the MSE summed over D and averaged over the M samples,
the same covariance term, ``-s_1 / sum s``, and ``lam = 0.01`` times the sum of the three.
"""

from __future__ import annotations

import numpy as np


def matrix(m: int, d: int, phase: float) -> np.ndarray:
    i, j = np.meshgrid(np.arange(m), np.arange(d), indexing="ij")
    return np.sin(1.3 * i + 0.7 * j + phase) + 0.25 * np.cos(0.5 * i * j + phase) + 0.1 * (j - i)


def direction(m: int, d: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(m), np.arange(d), indexing="ij")
    return np.cos(0.9 * i - 0.4 * j + 0.3)


def normalise_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mse(f, z, per: str):
    fh, zh = normalise_rows(f), normalise_rows(z)
    sq = (fh - zh) ** 2
    return sq.mean() if per == "element" else sq.sum(axis=1).mean()


def mse_grad(f, z, per: str):
    fh, zn = normalise_rows(f), np.linalg.norm(z, axis=1, keepdims=True)
    zh = z / zn
    scale = 2.0 / (z.size if per == "element" else z.shape[0])
    r = zh - fh                                               # d/dzh of the squared distance / 2
    return scale * (r - zh * (zh * r).sum(axis=1, keepdims=True)) / zn


def cov(z):
    m, d = z.shape
    zc = z - z.mean(axis=0)
    c = zc.T @ zc / (m - 1)
    off = c - np.diag(np.diag(c))
    return (off ** 2).sum() / d


def cov_grad(z):
    m, d = z.shape
    zc = z - z.mean(axis=0)
    c = zc.T @ zc / (m - 1)
    off = c - np.diag(np.diag(c))
    return 4.0 / (d * (m - 1)) * zc @ off


def svd_term(z, k: int, clip: bool):
    s = np.linalg.svd(z, compute_uv=False)
    div = min(k, len(s)) if clip else k
    return -s[:k].sum() / div / s.sum()


def svd_grad(z, k: int, clip: bool):
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    div = min(k, len(s)) if clip else k
    top, total = s[:k].sum() / div, s.sum()
    d_top = (u[:, :k] @ vt[:k]) / div
    d_total = u @ vt
    return -(d_top / total) + top / total ** 2 * d_total


def finite_diff(fn, z, v, h=1e-6):
    return (fn(z + h * v) - fn(z - h * v)) / (2 * h)


def case(name, f, z, mse_rows, variant):
    """f: pre-trained features paired in L_MSE with z[mse_rows]; z: the tuned batch."""
    if variant == "authors":
        per, k, clip, w, lam = "element", 5, True, (1.0, 0.04, 0.001), 1.0
    else:
        per, k, clip, w, lam = "sample", 1, False, (1.0, 1.0, 1.0), 0.01

    def total(zz):
        return lam * (w[0] * mse(f, zz[mse_rows], per) + w[1] * cov(zz)
                      + w[2] * svd_term(zz, k, clip))

    grad = np.zeros_like(z)
    grad[mse_rows] += lam * w[0] * mse_grad(f, z[mse_rows], per)
    grad += lam * (w[1] * cov_grad(z) + w[2] * svd_grad(z, k, clip))
    v = direction(*z.shape)
    dd = float((grad * v).sum())
    fd = finite_diff(total, z, v)
    assert abs(dd - fd) <= 1e-7 * max(1.0, abs(dd)), (name, dd, fd)
    return {"mse": mse(f, z[mse_rows], per), "cov": cov(z), "svd": svd_term(z, k, clip),
            "total": total(z), "grad_dot_v": dd, "grad_norm": float(np.linalg.norm(grad))}


def cases() -> dict:
    # one view, a small batch (min(M, D) = 4 < 5: the authors' top-5 mean divides by 4)
    f1, z1 = matrix(6, 4, 0.0), matrix(6, 4, 0.8)
    # two views of 5 images, D = 7: F of view 1, Z of both views stacked (10 x 7)
    f2, z2 = matrix(5, 7, 0.2), matrix(10, 7, 1.1)
    return {
        ("small", "paper"): case("small/paper", f1, z1, slice(None), "paper"),
        ("small", "authors"): case("small/authors", f1, z1, slice(None), "authors"),
        # the paper's single-view batch of the same size: F and Z both 10 x 7
        ("batch", "paper"): case("batch/paper", matrix(10, 7, 0.2), z2, slice(None), "paper"),
        ("two_view", "authors"): case("two_view/authors", f2, z2, slice(5, 10), "authors"),
    }


if __name__ == "__main__":
    for key, values in cases().items():
        print(f"    {key!r}: {{" + ", ".join(f"{k!r}: {float(v)!r}" for k, v in values.items())
              + "},")
