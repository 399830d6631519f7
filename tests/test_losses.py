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
