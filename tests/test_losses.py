"""Tests for nml.losses: NMTune's three terms, the fast SVD term, the config."""

import math

import numpy as np
import pytest
import torch

from nml.errors import ConfigError, DataError
from nml.losses import (NMTuneLossConfig, SpectralState, consistency_mse, covariance_loss,
                        dominant_singular_loss, nmtune_regularizer, polar_schedule)

torch.set_num_threads(1)


# --- hand-computed values ---------------------------------------------------------------------

def test_consistency_mse_by_hand():
    F = torch.tensor([[3.0, 4.0], [1.0, 0.0]])      # unit rows: (.6, .8), (1, 0)
    Z = torch.tensor([[4.0, 3.0], [0.0, 2.0]])      # unit rows: (.8, .6), (0, 1)
    # row 1: (-.2)^2 + (.2)^2 = .08 ; row 2: 1 + 1 = 2 ; mean = 1.04
    assert consistency_mse(F, Z).item() == pytest.approx(1.04, rel=1e-6)
    assert consistency_mse(F, 5 * F).item() == pytest.approx(0.0, abs=1e-7)


def test_consistency_mse_zero_row_and_shape_check():
    F = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    Z = torch.zeros(2, 2, requires_grad=True)
    loss = consistency_mse(F, Z)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)        # each row: |f - 0|^2 = 1
    assert torch.isfinite(Z.grad).all()
    with pytest.raises(DataError):
        consistency_mse(torch.zeros(2, 3), torch.zeros(2, 2))


def test_covariance_loss_by_hand_3x2():
    Z = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]])
    # means (3, 2); centred rows (-2, 0), (0, -2), (2, 2); C = [[8, 4], [4, 8]] / (M-1=2)
    # = [[4, 2], [2, 4]]; off-diagonal squares 2^2 + 2^2 = 8; divided by D = 2 -> 4
    assert covariance_loss(Z).item() == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("shape", [(7, 4), (4, 7)])
def test_covariance_loss_matches_numpy_cov(shape):
    z = np.random.default_rng(0).normal(size=shape)
    c = np.cov(z, rowvar=False, ddof=1)
    expected = (np.sum(c ** 2) - np.sum(np.diag(c) ** 2)) / shape[1]
    assert covariance_loss(torch.tensor(z)).item() == pytest.approx(expected, rel=1e-5)


# --- closed-form backward passes against autograd through the defining formulas ---------------

def _covariance_by_formula(Z):
    M, D = Z.shape
    c = torch.cov(Z.mT)                                   # D x D, divisor M - 1
    return (c.pow(2).sum() - torch.diagonal(c).pow(2).sum()) / D


def _mse_by_formula(F, Z, element):
    f = F / F.norm(dim=1, keepdim=True)
    z = Z / Z.norm(dim=1, keepdim=True)
    sq = (f - z).pow(2)
    return sq.mean() if element else sq.sum(dim=1).mean()


@pytest.mark.parametrize("shape", [(9, 5), (5, 9), (2, 3), (64, 64)])
def test_covariance_gradient_is_autograds_through_torch_cov(shape):
    Z = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    Z = (Z + torch.linspace(0, 2, shape[1], dtype=torch.float64)).requires_grad_()
    ours, = torch.autograd.grad(covariance_loss(Z), Z)
    reference, = torch.autograd.grad(_covariance_by_formula(Z), Z)
    assert ours.shape == Z.shape
    torch.testing.assert_close(ours, reference, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("element", [False, True])
@pytest.mark.parametrize("shape", [(8, 5), (3, 12)])
def test_consistency_gradient_is_autograds_through_the_normalisation(shape, element):
    gen = torch.Generator().manual_seed(4)
    F = torch.randn(*shape, dtype=torch.float64, generator=gen)
    Z = torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_()
    reduction = "element" if element else "sample"
    ours, = torch.autograd.grad(consistency_mse(F, Z, reduction=reduction), Z)
    reference, = torch.autograd.grad(_mse_by_formula(F, Z, element), Z)
    torch.testing.assert_close(ours, reference, rtol=2e-5, atol=1e-7)
    # a trainable F (no closed form there) still gets autograd's gradient on both sides
    F.requires_grad_()
    both = torch.autograd.grad(consistency_mse(F, Z, reduction=reduction), (F, Z))
    assert all(torch.isfinite(g).all() for g in both)
    torch.testing.assert_close(both[1], reference, rtol=2e-5, atol=1e-7)


def test_dominant_singular_loss_by_hand():
    Z = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])   # singular values 3, 1
    for method, tol in (("exact", 1e-6), ("fast", 1e-4)):
        assert dominant_singular_loss(Z, method=method).item() == pytest.approx(-0.75, abs=tol)
        # top 2: mean (3 + 1)/2 = 2 over the sum 4
        assert dominant_singular_loss(Z, top_k=2, method=method).item() == \
            pytest.approx(-0.5, abs=tol)
        # top 5 of a 2-value spectrum: missing values are 0, mean (3 + 1)/5 over 4
        assert dominant_singular_loss(Z, top_k=5, method=method).item() == \
            pytest.approx(-0.2, abs=tol)


# --- fast vs exact ----------------------------------------------------------------------------

def _matrix(kind: str, m: int, d: int) -> torch.Tensor:
    seed = {"gaussian": 1, "power": 2, "exponential": 3}[kind] * 10000 + m + d
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(m, d, generator=g, dtype=torch.float64)
    n = min(m, d)
    u, _ = torch.linalg.qr(torch.randn(m, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    i = torch.arange(1, n + 1, dtype=torch.float64)
    s = i ** -1.5 if kind == "power" else torch.exp(-i / 40)   # s_n/s_1 down to 2.4e-4
    return (u * s) @ v.T


@pytest.mark.parametrize("kind", ["gaussian", "power", "exponential"])
@pytest.mark.parametrize("shape", [(256, 512), (512, 192)])
@pytest.mark.parametrize("top_k", [1, 5])
@pytest.mark.parametrize("route", ["matmul", "eigh"])
def test_fast_matches_exact_value_and_gradient(kind, shape, top_k, route):
    z64 = _matrix(kind, *shape).requires_grad_(True)
    s = torch.linalg.svdvals(z64)                   # float64 reference
    ref = -(s[:top_k].sum() / top_k) / s.sum()
    ref.backward()
    z = z64.detach().float().requires_grad_(True)
    fast = dominant_singular_loss(z, top_k=top_k, method="fast", route=route)
    fast.backward()
    rel = abs(fast.item() - ref.item()) / abs(ref.item())
    cos = torch.nn.functional.cosine_similarity(z.grad.double().flatten(),
                                                z64.grad.flatten(), dim=0).item()
    assert rel <= 1e-3, rel
    assert cos >= 0.999, cos


@pytest.mark.parametrize("kind", ["gaussian", "power", "exponential"])
@pytest.mark.parametrize("shape", [(256, 512), (512, 192)])
@pytest.mark.parametrize("top_k", [1, 5])
def test_fast_routes_compute_the_same_estimate(kind, shape, top_k):
    """The eigh route (CPU) evaluates the matmul route's estimator (GPU) to float32 rounding:
    same bound, same polynomials; the top-K directions exact rather than power-iterated."""
    losses, grads = {}, {}
    for route in ("matmul", "eigh"):
        z = _matrix(kind, *shape).float().requires_grad_(True)
        loss = dominant_singular_loss(z, top_k=top_k, route=route)
        loss.backward()
        losses[route], grads[route] = loss.item(), z.grad.double().flatten()
    assert losses["eigh"] == pytest.approx(losses["matmul"], rel=5e-5)
    cos = torch.nn.functional.cosine_similarity(grads["eigh"], grads["matmul"], dim=0).item()
    assert cos >= 0.9999, cos


def test_fast_route_per_device_and_bad_route():
    from nml.losses import FAST_ROUTES, fast_route
    assert fast_route("cpu") == FAST_ROUTES["cpu"] == "eigh"
    assert fast_route(torch.device("cuda", 0)) == "matmul"
    with pytest.raises(ConfigError, match="route"):
        dominant_singular_loss(torch.ones(3, 2), route="svd")


def test_exact_method_gradient_matches_float64():
    z64 = _matrix("power", 64, 32).requires_grad_(True)
    s = torch.linalg.svdvals(z64)
    (-(s[0]) / s.sum()).backward()
    z = z64.detach().float().requires_grad_(True)
    dominant_singular_loss(z, method="exact").backward()
    cos = torch.nn.functional.cosine_similarity(z.grad.double().flatten(), z64.grad.flatten(),
                                                dim=0)
    assert cos.item() >= 0.9999


def test_polar_schedule_maps_interval_to_one():
    x = np.geomspace(1e-4, 1.0, 20000)
    for a, b, c in polar_schedule(1e-4, 8):
        x = a * x + b * x ** 3 + c * x ** 5
    assert np.max(np.abs(x - 1)) < 1e-4


def test_warm_start_state():
    z = _matrix("power", 256, 128).float()
    state = SpectralState()
    cold = dominant_singular_loss(z, top_k=5).item()
    first = dominant_singular_loss(z, top_k=5, state=state).item()
    assert state.vectors is not None and state.vectors.shape == (128, 5)
    second = dominant_singular_loss(z, top_k=5, state=state, power_iters=1).item()
    assert first == pytest.approx(cold, rel=1e-5)
    assert second == pytest.approx(cold, rel=1e-4)   # one step suffices from the warm start
    wide = _matrix("gaussian", 64, 128).float()       # M < D: state kept on the feature side
    state = SpectralState()
    dominant_singular_loss(wide, state=state)
    assert state.vectors.shape == (128, 1)


def test_bf16_autocast_is_stable():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 96)
    x = torch.randn(128, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = layer(x)
        assert z.dtype == torch.bfloat16
        total, parts = nmtune_regularizer(x @ torch.randn(64, 96), z)
    total.backward()
    assert math.isfinite(total.item()) and all(math.isfinite(v) for v in parts.values())
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    exact = dominant_singular_loss(z.detach().float(), method="exact").item()
    assert parts["svd"] == pytest.approx(exact, rel=1e-3)


# --- degenerate batches -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fast", "exact", "matmul"])
@pytest.mark.parametrize("top_k", [1, 5])
def test_degenerate_batches_do_not_give_nan(method, top_k, monkeypatch):
    if method == "matmul":   # the fast term by its GPU route, here on the CPU
        from nml import losses
        monkeypatch.setitem(losses.FAST_ROUTES, "cpu", "matmul")
        method = "fast"
    cfg = NMTuneLossConfig(svd_method=method, top_k=top_k)
    zeros = torch.zeros(8, 6, requires_grad=True)
    total, parts = nmtune_regularizer(torch.randn(8, 6), zeros, cfg)
    total.backward()
    assert parts["svd"] == 0.0 and parts["cov"] == 0.0
    assert torch.isfinite(zeros.grad).all()

    rank1 = torch.outer(torch.arange(1.0, 9.0), torch.tensor([1.0, -2.0, 0.5, 0, 3, 1]))
    rank1.requires_grad_(True)
    loss = dominant_singular_loss(rank1, top_k=top_k, method=method)
    loss.backward()
    assert loss.item() == pytest.approx(-1.0 / top_k, abs=1e-4)
    assert torch.isfinite(rank1.grad).all()

    one_row = torch.randn(1, 6, requires_grad=True)
    total, parts = nmtune_regularizer(torch.randn(1, 6), one_row, cfg)
    total.backward()
    assert parts["cov"] == 0.0                       # sample covariance undefined for M < 2
    assert parts["svd"] == pytest.approx(-1.0 / top_k, abs=1e-4)
    assert torch.isfinite(one_row.grad).all()

    empty = torch.zeros(0, 6)
    assert dominant_singular_loss(empty, method=method).item() == 0.0
    assert covariance_loss(empty).item() == 0.0


# --- config and the combined regulariser --------------------------------------------------------

def test_config_defaults_and_authors_variant():
    cfg = NMTuneLossConfig()
    assert (cfg.lam, cfg.w_mse, cfg.w_cov, cfg.w_svd, cfg.top_k) == (0.01, 1.0, 1.0, 1.0, 1)
    authors = NMTuneLossConfig.authors_code()
    assert (authors.w_mse, authors.w_cov, authors.w_svd, authors.top_k) == (1.0, 0.04, 0.001, 5)
    assert NMTuneLossConfig.authors_code(svd_method="exact").svd_method == "exact"
    with pytest.raises(ConfigError):
        NMTuneLossConfig.from_dict(lamda=0.1)
    with pytest.raises(ConfigError):
        NMTuneLossConfig(svd_method="svd")
    with pytest.raises(ConfigError):
        NMTuneLossConfig(w_cov=-1.0)
    with pytest.raises(ConfigError):
        NMTuneLossConfig(top_k=0)


def test_regularizer_is_weighted_sum_without_lambda():
    g = torch.Generator().manual_seed(5)
    F, Z = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    cfg = NMTuneLossConfig(lam=0.5, w_mse=2.0, w_cov=0.25, w_svd=3.0, svd_method="exact")
    total, parts = nmtune_regularizer(F, Z, cfg)
    assert set(parts) == {"mse", "cov", "svd"}
    assert parts["mse"] == pytest.approx(consistency_mse(F, Z).item(), rel=1e-6)
    assert parts["cov"] == pytest.approx(covariance_loss(Z).item(), rel=1e-6)
    assert parts["svd"] == pytest.approx(dominant_singular_loss(Z, method="exact").item(),
                                         rel=1e-6)
    expected = 2.0 * parts["mse"] + 0.25 * parts["cov"] + 3.0 * parts["svd"]
    assert total.item() == pytest.approx(expected, rel=1e-5)


# --- golden values: the paper's and the authors' regulariser ------------------------------------
# Computed by an independent numpy float64 implementation of the formulas with analytic
# gradients checked against finite differences: scripts/nmtune_golden_values.py (its output,
# pasted). "total" is what is added to the cross-entropy (paper: lam * (...), lam = 0.01;
# authors: mse + 0.04 cov + 0.001 svd, no lambda); the gradient is that of "total" with
# respect to Z, checked as its inner product with a fixed direction V and its norm.
GOLDEN = {
    ('small', 'paper'): {'mse': 0.6640876324322119, 'cov': 0.6349484976237424, 'svd': -0.5070092487039745, 'total': 0.007920268813519798, 'grad_dot_v': 0.00730929991623078, 'grad_norm': 0.008165311313780831},  # noqa: E501
    ('small', 'authors'): {'mse': 0.16602190810805298, 'cov': 0.6349484976237424, 'svd': -0.25, 'total': 0.19116984801300269, 'grad_dot_v': 0.010680456108563979, 'grad_norm': 0.12078643963270025},  # noqa: E501
    ('batch', 'paper'): {'mse': 0.6883066057420137, 'cov': 0.8746094605025572, 'svd': -0.39189877435081505, 'total': 0.011710172918937558, 'grad_dot_v': 0.0007423441086998679, 'grad_norm': 0.006701754885943928},  # noqa: E501
    ('two_view', 'authors'): {'mse': 0.2296564174478505, 'cov': 0.8746094605025572, 'svd': -0.19053976155197322, 'total': 0.2644502561064008, 'grad_dot_v': -0.027891231135331596, 'grad_norm': 0.05945775093279567},  # noqa: E501
}


def _golden_matrix(m, d, phase):
    i, j = np.meshgrid(np.arange(m), np.arange(d), indexing="ij")
    x = np.sin(1.3 * i + 0.7 * j + phase) + 0.25 * np.cos(0.5 * i * j + phase) + 0.1 * (j - i)
    return torch.tensor(x, dtype=torch.float32)


def _golden_direction(m, d):
    i, j = np.meshgrid(np.arange(m), np.arange(d), indexing="ij")
    return torch.tensor(np.cos(0.9 * i - 0.4 * j + 0.3), dtype=torch.float32)


def _golden_inputs(case):
    """(F, Z, rows of Z paired with F in L_MSE) of one golden case."""
    if case == "small":        # 6 x 4: min(M, D) = 4 < 5, the authors' small-batch edge case
        return _golden_matrix(6, 4, 0.0), _golden_matrix(6, 4, 0.8), slice(None)
    z = _golden_matrix(10, 7, 1.1)
    if case == "batch":        # the paper's single-view batch, 10 x 7
        return _golden_matrix(10, 7, 0.2), z, slice(None)
    # the authors' two-view batch: F of view 1 (5 x 7), Z of both views stacked (10 x 7),
    # L_MSE between F and view 2's Z
    return _golden_matrix(5, 7, 0.2), z, slice(5, 10)


@pytest.mark.parametrize("svd_method", ["exact", "fast"])
@pytest.mark.parametrize("case,variant", list(GOLDEN))
def test_regulariser_matches_golden_values(case, variant, svd_method):
    F, Z, rows = _golden_inputs(case)
    Z = Z.clone().requires_grad_(True)
    cfg = (NMTuneLossConfig.authors_code(svd_method=svd_method) if variant == "authors"
           else NMTuneLossConfig(svd_method=svd_method))
    mse_z = None if rows == slice(None) else Z[rows]
    reg, parts = nmtune_regularizer(F, Z, cfg, mse_z=mse_z)
    total = cfg.lam * reg               # what nml.tune adds to the cross-entropy
    total.backward()
    want = GOLDEN[(case, variant)]
    tol = 1e-5 if svd_method == "exact" else 1e-4
    for name in ("mse", "cov", "svd"):
        assert parts[name] == pytest.approx(want[name], rel=tol, abs=1e-7), name
    assert total.item() == pytest.approx(want["total"], rel=tol, abs=1e-8)
    v = _golden_direction(*Z.shape)
    assert float((Z.grad * v).sum()) == pytest.approx(want["grad_dot_v"], rel=tol, abs=1e-8)
    assert float(Z.grad.norm()) == pytest.approx(want["grad_norm"], rel=tol, abs=1e-8)


def test_authors_variant_reductions_differ_from_the_papers_as_documented():
    F, Z, _ = _golden_inputs("small")
    # the authors' MSE is the per-sample value over D = 4 entries
    assert consistency_mse(F, Z, reduction="element").item() == pytest.approx(
        consistency_mse(F, Z).item() / 4, rel=1e-6)
    # top-5 on 4 singular values: the authors' mean divides by 4 (= -1/4 for any Z), nml's
    # default by 5 (the missing value counts as zero)
    assert dominant_singular_loss(Z, top_k=5, method="exact", clip_k=True).item() == \
        pytest.approx(-0.25, rel=1e-6)
    assert dominant_singular_loss(Z, top_k=5, method="exact").item() == pytest.approx(-0.2,
                                                                                      rel=1e-6)
    cfg = NMTuneLossConfig.authors_code()
    assert (cfg.variant, cfg.lam, cfg.w_mse, cfg.w_cov, cfg.w_svd, cfg.top_k) == \
        ("authors", 1.0, 1.0, 0.04, 0.001, 5)
    # the variant joins the hash only when set: old keys stay
    assert "variant" not in NMTuneLossConfig().to_dict()
    assert NMTuneLossConfig().hash() != NMTuneLossConfig(variant="authors").hash()
    with pytest.raises(ConfigError):
        consistency_mse(F, Z, reduction="sum")
    with pytest.raises(ConfigError):
        NMTuneLossConfig(variant="author")
