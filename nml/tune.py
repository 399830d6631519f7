"""Downstream tuning: LP, MLP tuning and black-box NMTune on cached features; LoRA,
LoRA + NMTune and full fine-tuning on the backbone.

The paper's settings are the defaults (journal version, Sections 4.3 and 6): AdamW with a cosine
schedule; LP lr 0.01 without weight decay; MLP / NMTune lr 1e-3, weight decay 1e-4, MLP
D -> 4D -> D with ReLU; LoRA lr 2e-4, weight decay 1e-4, rank = in_features / 8 on the ViT MLP
layers; full fine-tuning lr 1e-4, weight decay 1e-4; 30 epochs; NMTune weight lambda = 0.01.
``lr=None`` / ``weight_decay=None`` mean "the paper's value for this method".

Every tuning run returns tidy rows (accuracy and macro-F1 on each test set, SVE and LSVR of the
features the classifier sees) and the singular values of those features.

Used by chapters 02_linear_probe, 04_lora, 05_full_finetune, 06_nmtune, 08-11.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from tqdm.auto import tqdm

from .config import MAX_LR, MAX_WEIGHT_DECAY, Config, check_range
from .errors import ConfigError, DataError
from .guards import check_features, check_loss, check_parameters
from .vocab import BLACKBOX_METHODS, METHODS, NMTUNE_METHODS, PAPER_LAMBDA, WHITEBOX_METHODS

__all__ = ["METHODS", "BLACKBOX_METHODS", "PAPER_LR", "PAPER_WEIGHT_DECAY", "VARIANTS",
           "AUTHORS_LORA_RANK", "AUTHORS_BATCH_SIZE", "TuneConfig",
           "TuneResult", "FeatureMLP", "tune_on_features", "tune_backbone", "evaluate_logits",
           "downstream_train_labels"]

PAPER_LR = {"lp": 0.01, "mlp": 1e-3, "nmtune": 1e-3, "lora": 2e-4, "lora_nmtune": 2e-4,
            "ft": 1e-4}
PAPER_WEIGHT_DECAY = {"lp": 0.0, "mlp": 1e-4, "nmtune": 1e-4, "lora": 1e-4, "lora_nmtune": 1e-4,
                      "ft": 1e-4}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "identity": nn.Identity}
#: ``TuneConfig.variant``: the paper's NMTune (the default) or the authors' public code's
#: whole set-up (book/method.md, "The paper and the authors' code", lists every difference).
VARIANTS = ("paper", "authors")
#: The authors' LoRA: peft ``LoraConfig(r=8)`` on every ViT MLP layer (``nml_finetune.py``).
AUTHORS_LORA_RANK = 8
#: The batch of the authors' README commands (64 images; two views of each in black-box NMTune).
AUTHORS_BATCH_SIZE = 64


@dataclass(frozen=True)
class TuneConfig(Config):
    """One downstream tuning run. Defaults are the paper's (journal Sections 4.3, 6.1).

    ``variant="authors"`` switches to the authors' public code (Hhhhhhao/Noisy-Model-Learning)
    in one go: the regulariser of :meth:`nml.losses.NMTuneLossConfig.authors_code` (no lambda;
    LoRA + NMTune with the covariance and SVD terms only), the head
    ``Linear(D, kD) -> BatchNorm1d -> ReLU -> Linear(kD, D)`` with ``Z = s * h(F) + F`` (``s`` a
    learnable 1 x D scale initialised to ``res_scale_init``), a Kaiming-uniform classifier with
    zero bias, black-box MLP / NMTune on two augmented views of each training image (crop 80-100 %
    + flip; cross-entropy on both, L_MSE between view 1's F and view 2's Z), LoRA at rank 8.
    :meth:`authors_code` also sets their batch of 64 images.
    """

    # Fields added after results were stored: at their default they stay out of the hash.
    added_fields: ClassVar[tuple[str, ...]] = ("variant", "res_scale_init")

    method: str = "lp"            # lp | mlp | nmtune | lora | lora_nmtune | ft
    epochs: int = 30              # paper: 30 for LP and FT
    lr: float | None = None       # None: the paper's lr for the method (PAPER_LR)
    weight_decay: float | None = None  # None: the paper's value (PAPER_WEIGHT_DECAY)
    batch_size: int = 256         # downstream mini-batch
    fraction: float = 1.0         # share of the downstream train set used (paper: .1 .25 .5 .75 1)
    seed: int = 0                 # downstream seed: head init, batch order, data subset
    lam: float = PAPER_LAMBDA     # NMTune weight lambda (paper: 0.01 for all experiments)
    w_mse: float = 1.0            # weight of L_MSE inside the bracket (paper 1; authors' code 1.0)
    w_cov: float = 1.0            # weight of L_COV (paper 1; authors' code 0.04)
    w_svd: float = 1.0            # weight of L_SVD (paper 1; authors' code 0.001)
    svd_top_k: int = 1            # L_SVD on the mean of the top-k normalised singular values
    svd_method: str = "fast"      # fast (matmul-only) | exact (torch.linalg.svdvals)
    mlp_hidden_mult: int = 4      # hidden width of the MLP h as a multiple of D (paper: 4)
    mlp_layers: int = 2           # number of linear layers in h (paper: 2)
    mlp_activation: str = "relu"  # relu | gelu | tanh | identity (ablation of the non-linearity)
    residual_mlp: bool = False    # authors' code: Z = F + h(F) instead of Z = h(F)
    label_noise: float = 0.0      # symmetric noise added to the downstream train labels (paper 7.4)
    lora_ratio: int = 8           # LoRA rank = in_features // lora_ratio (paper: 8)
    augment: bool = False         # black-box: extract train features under augmentation
    variant: str = "paper"        # paper | authors (the authors' public code, see the docstring)
    res_scale_init: float = 0.5   # authors: initial residual scale s (their default 0.5; README 1.0)

    @classmethod
    def authors_code(cls, method: str = "nmtune", **overrides) -> "TuneConfig":
        """The authors' set-up for ``method``: ``variant="authors"`` and their batch of 64.

        Used by chapters 06_nmtune and 11_ablations.
        """
        return cls.from_dict({"method": method, "variant": "authors",
                              "batch_size": AUTHORS_BATCH_SIZE}, **overrides)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown tuning method {self.method!r}; choose one of {METHODS}")
        if self.svd_method not in ("fast", "exact"):
            raise ConfigError(f"svd_method must be 'fast' or 'exact', got {self.svd_method!r}")
        if self.mlp_activation not in ACTIVATIONS:
            raise ConfigError(f"mlp_activation must be one of {tuple(ACTIVATIONS)}, "
                              f"got {self.mlp_activation!r}")
        check_range("epochs", self.epochs, 1, None)
        check_range("batch_size", self.batch_size, 2, None)
        check_range("fraction", self.fraction, 0.0, 1.0, lo_inclusive=False)
        check_range("lam", self.lam, 0.0, None)
        check_range("label_noise", self.label_noise, 0.0, 1.0, hi_inclusive=False)
        check_range("svd_top_k", self.svd_top_k, 1, None)
        check_range("mlp_layers", self.mlp_layers, 1, None)
        check_range("mlp_hidden_mult", self.mlp_hidden_mult, 1, None)
        check_range("lora_ratio", self.lora_ratio, 1, None)
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, MAX_LR, lo_inclusive=False)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, 0.0, MAX_WEIGHT_DECAY)
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        check_range("res_scale_init", self.res_scale_init, None, None)
        if self.variant == "paper" and self.res_scale_init != 0.5:
            raise ConfigError("res_scale_init only acts with variant='authors' (their residual "
                              "scale); leave it at 0.5 or pass variant='authors'")
        if self.variant == "authors":
            fixed = {"lam": PAPER_LAMBDA, "w_mse": 1.0, "w_cov": 1.0, "w_svd": 1.0, "svd_top_k": 1,
                     "residual_mlp": False, "augment": False, "lora_ratio": 8}
            changed = [k for k, v in fixed.items() if getattr(self, k) != v]
            if changed:
                raise ConfigError(
                    f"variant='authors' fixes {changed} itself (weights 1 / 0.04 / 0.001 with no "
                    f"lambda, top-5 SVD term, residual head, two augmented views, LoRA rank "
                    f"{AUTHORS_LORA_RANK}); leave them at their defaults or use variant='paper'")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else PAPER_LR[self.method]

    @property
    def decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else \
            PAPER_WEIGHT_DECAY[self.method]

    @property
    def uses_nmtune(self) -> bool:
        return self.method in NMTUNE_METHODS

    @property
    def authors(self) -> bool:
        return self.variant == "authors"

    def loss_config(self):
        """The NMTune regulariser's config (nml.losses) built from this run's fields."""
        from .losses import NMTuneLossConfig
        if self.authors:   # their LoRA + NMTune has no MSE term (nml_finetune.py)
            return NMTuneLossConfig.authors_code(
                svd_method=self.svd_method,
                **({"w_mse": 0.0} if self.method == "lora_nmtune" else {}))
        return NMTuneLossConfig.from_dict(
            lam=self.lam, w_mse=self.w_mse, w_cov=self.w_cov, w_svd=self.w_svd,
            top_k=self.svd_top_k, svd_method=self.svd_method)


@dataclass
class TuneResult:
    """Metrics per test set and the singular values of the features the classifier sees."""

    metrics: list[dict]                       # {"test_set", "metric", "value"}
    singular_values: dict[str, np.ndarray]    # test_set -> s (descending); "authors/<test_set>"
    #                                           -> s under the authors' preprocessing
    history: list[dict] = field(default_factory=list)  # per-epoch train loss and reg terms
    train_noise_rate: float = 0.0             # realised share of flipped train labels (label_noise)


class FeatureMLP(nn.Module):
    """NMTune's h: D -> mult*D -> ... -> D with a non-linearity between layers (paper Fig. 6a).

    ``residual``: ``Z = F + h(F)``. The authors' head (``batchnorm=True``,
    ``res_scale=0.5``): ``BatchNorm1d`` after each hidden linear layer (before the
    non-linearity) and ``Z = s * h(F) + F`` with ``s`` a learnable 1 x D scale initialised to
    ``res_scale`` (their ``ImageEncoderMLP``).
    """

    def __init__(self, dim: int, hidden_mult: int = 4, layers: int = 2,
                 activation: str = "relu", residual: bool = False, *, batchnorm: bool = False,
                 res_scale: float | None = None):
        super().__init__()
        widths = [dim] + [dim * hidden_mult] * (layers - 1) + [dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(widths[i], widths[i + 1]))
            if i < layers - 1:
                if batchnorm:
                    mods.append(nn.BatchNorm1d(widths[i + 1]))
                mods.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*mods)
        self.residual = residual
        self.scale = None if res_scale is None else nn.Parameter(
            torch.full((1, dim), float(res_scale)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.net(f)
        if self.scale is not None:
            return self.scale * z + f
        return f + z if self.residual else z


def _classifier(dim: int, num_classes: int, cfg: TuneConfig) -> nn.Linear:
    """The linear classifier: PyTorch's default init (paper), or the authors' Kaiming-uniform
    weights (``torch.nn.init.kaiming_uniform_``, a = 0) with zero bias."""
    head = nn.Linear(dim, num_classes)
    if cfg.authors:
        with torch.no_grad():
            nn.init.kaiming_uniform_(head.weight)
            head.bias.zero_()
    return head


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Accuracy and macro-F1 (percent) of ``logits`` against ``labels``."""
    pred = logits.argmax(1).cpu().numpy()
    true = labels.cpu().numpy()
    acc = float((pred == true).mean() * 100)
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn == 0:
            continue  # class absent from both: it does not count (as in sklearn's labels=present)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": acc, "f1": float(np.mean(f1s) * 100)}


def _spectrum_rows(test_set: str, z: torch.Tensor) -> tuple[list[dict], dict[str, np.ndarray]]:
    """SVE / LSVR rows and singular values of ``z`` under both preprocessings (nml.spectrum)."""
    from .spectrum import spectrum_rows
    return spectrum_rows(z, test_set)


def _subset_indices(n: int, fraction: float, seed: int) -> torch.Tensor:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    keep = max(2, int(round(fraction * n)))
    return perm[:keep].sort().values


def _noisy_labels(labels: torch.Tensor, num_classes: int, cfg: TuneConfig) -> torch.Tensor:
    if cfg.label_noise == 0:
        return labels
    from .noise import symmetric_noise
    noisy = symmetric_noise(labels.numpy(), cfg.label_noise, num_classes, seed=cfg.seed + 104729)
    return torch.as_tensor(np.asarray(noisy), dtype=torch.long)


def downstream_train_labels(train_labels: torch.Tensor, num_classes: int,
                            cfg: TuneConfig) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The train subset a run uses (``cfg.fraction``, drawn with ``cfg.seed``): its indices, its
    labels with ``cfg.label_noise`` applied, and the realised share of flipped labels.

    Used by chapter 09_noisy_downstream (the rate is stored with each unit as the metric
    ``train_noise_rate``; ``scripts/add_downstream_noise_rates.py`` adds it to older units).
    """
    idx = _subset_indices(len(train_labels), cfg.fraction, cfg.seed)
    clean = train_labels[idx].long()
    labels = _noisy_labels(clean, num_classes, cfg)
    return idx, labels, float((labels != clean).sum()) / max(1, len(clean))


def _cosine(optimizer, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))


def _training_setup(params, cfg: TuneConfig, steps_per_epoch: int):
    """AdamW with the method's lr and weight decay, a per-step cosine schedule, and the NMTune
    regulariser (None unless the method uses it)."""
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.decay)
    scheduler = _cosine(optimizer, cfg.epochs * steps_per_epoch)
    regulariser = None
    if cfg.uses_nmtune:
        from .losses import nmtune_regularizer
        loss_cfg = cfg.loss_config()

        def regulariser(f, z, mse_z=None):
            """``(lam * reg, parts)``: what joins the cross-entropy (lam = 1 for the authors)."""
            reg, parts = nmtune_regularizer(f, z, loss_cfg, mse_z=mse_z)
            return loss_cfg.lam * reg, parts
    return optimizer, scheduler, regulariser


def _check_train_set(n: int, batch_size: int, what: str) -> None:
    if n < 2:
        raise DataError(f"{what} has {n} example(s) after the data fraction; tuning needs at "
                        f"least 2: raise `fraction` or use a larger task")


def tune_on_features(train_features: torch.Tensor, train_labels: torch.Tensor,
                     tests: dict[str, tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                     cfg: TuneConfig, *, device: str | torch.device = "cpu",
                     progress: bool = True, train_features_view2: torch.Tensor | None = None
                     ) -> TuneResult:
    """Black-box tuning (LP, MLP, NMTune) on frozen features.

    ``tests`` maps a test-set name to (features, labels). Returns per-test-set accuracy, F1,
    SVE and LSVR (of the raw features and under the authors' preprocessing) of the classifier's
    input features (F for LP, Z = h(F) otherwise).

    ``cfg.variant == "authors"`` with MLP / NMTune needs ``train_features_view2``, the features
    of a second augmented view of the same training images (``train_features`` is view 1): each
    step stacks both views (2 x batch rows) through the head and the classifier, as the authors'
    code does. LP under the authors' variant is their linear probe: unaugmented features and a
    Kaiming-uniform classifier.
    """
    # long: one seeded training loop for LP, MLP and NMTune; its order of random draws fixes every
    # stored result
    if cfg.method not in BLACKBOX_METHODS:
        raise ConfigError(f"tune_on_features runs {BLACKBOX_METHODS}; {cfg.method!r} needs the "
                          f"backbone: use tune_backbone")
    two_views = cfg.authors and cfg.method != "lp"
    if two_views and train_features_view2 is None:
        raise ConfigError("variant='authors' tunes the MLP on two augmented views of each "
                          "training image: pass train_features_view2 (Pipeline.tune extracts "
                          "both views)")
    if two_views and train_features_view2.shape != train_features.shape:
        raise DataError(f"train_features_view2 has shape {tuple(train_features_view2.shape)}, "
                        f"not that of train_features {tuple(train_features.shape)}; both views "
                        f"must come from the same images")
    device = torch.device(device)
    check_features(train_features, "the downstream train features")
    for name, (test_f, _) in tests.items():
        check_features(test_f, f"the {name!r} test features")
    idx, labels, noise_rate = downstream_train_labels(train_labels, num_classes, cfg)
    _check_train_set(len(idx), cfg.batch_size, "the downstream train set")
    feats = train_features[idx].float().to(device)
    feats2 = train_features_view2[idx].float().to(device) if two_views else None
    labels = labels.to(device)
    dim = feats.shape[1]

    torch.manual_seed(cfg.seed)
    mlp = None if cfg.method == "lp" else FeatureMLP(
        dim, cfg.mlp_hidden_mult, cfg.mlp_layers, cfg.mlp_activation, cfg.residual_mlp,
        batchnorm=cfg.authors, res_scale=cfg.res_scale_init if cfg.authors else None).to(device)
    head = _classifier(dim, num_classes, cfg).to(device)
    params = list(head.parameters()) + (list(mlp.parameters()) if mlp is not None else [])
    steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
    optimizer, scheduler, regulariser = _training_setup(params, cfg, steps_per_epoch)

    generator = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in tqdm(range(cfg.epochs), desc=f"{cfg.method}", disable=not progress, leave=False):
        if mlp is not None:
            mlp.train()
        order = torch.randperm(len(labels), generator=generator).to(device)
        total, parts_sum = 0.0, {}
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            f, y = feats[batch], labels[batch]
            if two_views:   # the authors' batch: both views stacked, labels repeated
                z = mlp(torch.cat([f, feats2[batch]]))
                y = torch.cat([y, y])
                mse_z = z[len(batch):]      # L_MSE: view 2's Z against view 1's F
            else:
                z = mlp(f) if mlp is not None else f
                mse_z = None
            loss = nnf.cross_entropy(head(z), y)
            if regulariser is not None:
                reg, parts = regulariser(f, z, mse_z)
                loss = loss + reg
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + float(v)
            value = float(loss.detach())
            check_loss(value, what=f"{cfg.method} tuning", epoch=epoch + 1,
                       step=start // cfg.batch_size + 1, lr=cfg.learning_rate)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += value
        check_parameters([head] + ([mlp] if mlp is not None else []),
                         what=f"{cfg.method} tuning", epoch=epoch + 1, lr=cfg.learning_rate)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch,
                        **{k: v / steps_per_epoch for k, v in parts_sum.items()}})

    metrics, spectra = [], {}
    if mlp is not None:
        mlp.eval()
    with torch.no_grad():
        for name, (test_f, test_y) in tests.items():
            z = test_f.float().to(device)
            z = mlp(z) if mlp is not None else z
            scores = evaluate_logits(head(z), test_y, num_classes)
            metrics += [{"test_set": name, "metric": k, "value": v} for k, v in scores.items()]
            rows, arrays = _spectrum_rows(name, z.cpu())
            metrics += rows
            spectra.update(arrays)
    return TuneResult(metrics, spectra, history, noise_rate)


def tune_backbone(backbone, train_images: torch.Tensor, train_labels: torch.Tensor,
                  tests: dict[str, tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                  cfg: TuneConfig, *, mean, std, device: str | torch.device = "cpu",
                  progress: bool = True) -> TuneResult:
    """White-box tuning of a copy of ``backbone`` on uint8 images: LoRA, LoRA + NMTune, FT.

    LoRA (through peft, :func:`nml.models.lora_wrap`) trains low-rank adapters on the ViT MLP
    layers and a new linear head; LoRA + NMTune adds the three NMTune terms on the penultimate
    features Z, with F the same batch's features with the adapters switched off; FT trains
    every weight. Training images are augmented on the device (random crop + flip).

    ``cfg.variant == "authors"``: LoRA at rank 8 on every adapted layer, the covariance and SVD
    terms only (so F is not computed), a Kaiming-uniform classifier with zero bias, and the
    authors' augmentation (crop of 80-100 % + flip, :func:`nml.data.augment_resized_crop`).
    """
    # long: one seeded training loop for LoRA, LoRA + NMTune and FT; its order of random draws fixes
    # every stored result
    from .data import augment, augment_resized_crop, to_float

    augmenter = augment_resized_crop if cfg.authors else augment

    if cfg.method not in WHITEBOX_METHODS:
        raise ConfigError(f"tune_backbone runs lora, lora_nmtune and ft; use tune_on_features "
                          f"for {cfg.method!r}")
    device = torch.device(device)
    idx, labels, noise_rate = downstream_train_labels(train_labels, num_classes, cfg)
    _check_train_set(len(idx), cfg.batch_size, "the downstream train set")
    images = train_images[idx].to(device)
    labels = labels.to(device)

    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(backbone).to(device)
    adapter = None
    if cfg.method == "ft":
        model.requires_grad_(True)
    else:
        from .models import lora_wrap
        adapter = lora_wrap(model, ratio=cfg.lora_ratio,
                            rank=AUTHORS_LORA_RANK if cfg.authors else None)
    head = _classifier(model.feature_dim, num_classes, cfg).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
    optimizer, scheduler, regulariser = _training_setup(trainable, cfg, steps_per_epoch)

    use_bf16 = device.type == "cuda"
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in tqdm(range(cfg.epochs), desc=cfg.method, disable=not progress, leave=False):
        model.train()
        order = torch.randperm(len(labels), generator=order_gen).to(device)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            x = to_float(augmenter(images[batch], generator), mean, std)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                z = model.features(x)
                loss = nnf.cross_entropy(head(z).float(), labels[batch])
            if regulariser is not None:
                if cfg.authors:    # no MSE term: F is not needed (its weight is 0)
                    f = z.detach()
                else:
                    with torch.no_grad(), adapter.disable_adapter(), torch.autocast(
                            device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        f = model.features(x)
                reg, _ = regulariser(f.float(), z.float())
                loss = loss + reg
            value = float(loss.detach())
            check_loss(value, what=f"{cfg.method} tuning", epoch=epoch + 1,
                       step=start // cfg.batch_size + 1, lr=cfg.learning_rate)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += value
        check_parameters([model, head], what=f"{cfg.method} tuning", epoch=epoch + 1,
                         lr=cfg.learning_rate)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch})

    from .features import extract_features
    model.eval()
    metrics, spectra = [], {}
    with torch.no_grad():
        for name, (test_images, test_y) in tests.items():
            z = extract_features(model, test_images, mean, std, batch_size=cfg.batch_size * 2,
                                 device=device)
            scores = evaluate_logits(head(z.to(device)), test_y, num_classes)
            metrics += [{"test_set": name, "metric": k, "value": v} for k, v in scores.items()]
            rows, arrays = _spectrum_rows(name, z)
            metrics += rows
            spectra.update(arrays)
    return TuneResult(metrics, spectra, history, noise_rate)
