"""The experiment pipeline the chapters call: pre-train, extract, tune, measure; store it all.

A :class:`Scale` fixes the data, backbones, epochs and seeds of one scale of the book:

- ``tiny``: the embedded synthetic data and micro backbones, minutes on any CPU (tests, CI,
  a fresh clone without data);
- ``cpu``: real CIFAR-100 -> CIFAR-10 / PACS at a reduced model size and epoch count that a
  2-core CPU can run (labelled "reduced CPU scale" wherever it is shown);
- ``cifar``: the GPU scale of the book (full-width ResNet-18 with a CIFAR stem and a small ViT,
  30 pre-training epochs, three seeds).

:class:`Pipeline` computes each unit once and keeps it in the :class:`~nml.results.ResultStore`:
asking again replays it. Result rows carry the index columns of :mod:`nml.results` plus
``test_set`` (``test`` for ID tasks, the target domain or corruption for OOD tasks, and
``mean`` for the average over an OOD task's targets).

Used by every chapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .clip import is_clip_backbone
from .errors import ConfigError
from .guards import pick_device
from .results import ResultStore, Unit, UnitOutput, default_cache_root
from .vocab import BLACKBOX_METHODS, EXPERIMENT_OF

__all__ = ["Scale", "SCALES", "get_scale", "Pipeline", "MissingResult", "replay_or_compute",
           "run_tiny_pipeline",
           "authors_view_seeds"]


class MissingResult(LookupError):
    """A unit asked for in replay-only mode is not in the store."""


@dataclass(frozen=True)
class Scale:
    """Everything that differs between the book's scales."""

    name: str
    description: str                 # stated in every figure caption
    upstream: str                    # pre-training dataset
    image_size: int                  # pixels per side for every dataset at this scale
    backbones: tuple[str, ...]       # (convolutional, transformer)
    noise_levels: tuple[float, ...]  # pre-training noise ratios
    pretrain_seeds: tuple[int, ...]  # each seed draws its own noisy labels
    tune_seeds: tuple[int, ...]      # downstream seeds
    id_tasks: tuple[str, ...]
    ood_tasks: tuple[str, ...]
    pretrain_epochs: int
    pretrain_overrides: tuple[tuple[str, object], ...] = ()  # extra PretrainConfig fields
    tune_epochs: int = 30            # black-box tuning epochs (paper: 30)
    whitebox_epochs: int = 30        # LoRA / FT epochs (paper: 30)
    whitebox_train_limit: int | None = None  # cap on LoRA / FT train images (CPU cost)
    whitebox_seeds: tuple[int, ...] | None = None  # LoRA / FT seeds (None: tune_seeds)
    whitebox_batch_size: int = 256   # LoRA / FT mini-batch (small sets need more steps)
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
    cifar10c_severities: tuple[int, ...] = (1, 2, 3, 4, 5)  # corruption severities tested
    test_limit: int | None = None    # seeded cap on images per test set (CPU cost)
    lambdas: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    clip_backbone: str = "clip_vit_micro"   # CLIP model of this scale (nml.clip)
    clip_noise_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)  # caption-swap ratios (paper 4.2)
    clip_overrides: tuple[tuple[str, object], ...] = ()  # PretrainConfig fields for CLIP runs
    ablation_tasks: tuple[str, ...] | None = None  # chapter 11's tasks (None: every task)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.id_tasks + self.ood_tasks


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny",
        description="tiny scale: embedded synthetic data (16 px), micro backbones, CPU",
        upstream="synthetic_upstream", image_size=16,
        backbones=("resnet_micro", "vit_micro"),
        noise_levels=(0.0, 0.1, 0.3), pretrain_seeds=(0,), tune_seeds=(0, 1, 2),
        id_tasks=("synthetic_id",), ood_tasks=("synthetic_ood_photo",),
        pretrain_epochs=6, tune_epochs=10, whitebox_epochs=10, whitebox_train_limit=1000,
        whitebox_batch_size=64, fractions=(0.25, 1.0),
        # Contrastive learning from 4,000 pairs needs more passes than the supervised 6 epochs.
        clip_overrides=(("epochs", 20),)),
    "cpu": Scale(
        name="cpu",
        description=("reduced CPU scale: CIFAR-100 pre-training on half its training set "
                     "(25k images) at 32 px, quarter-width ResNet-18 (CIFAR stem), 6 epochs, "
                     "noise 0 / 10 / 30 %, 1 pre-training seed; 10 black-box tuning epochs "
                     "(LP / MLP / NMTune), 3 LoRA / FT epochs on at most 5,000 train images; "
                     "test sets capped at 3,000 images, "
                     "CIFAR-10-C at severity 5; 2-core CPU"),
        upstream="cifar100", image_size=32,
        backbones=("resnet18_cifar_narrow",),
        noise_levels=(0.0, 0.1, 0.3), pretrain_seeds=(0,), tune_seeds=(0, 1, 2),
        id_tasks=("cifar10",), ood_tasks=("pacs_photo", "cifar10c"),
        pretrain_epochs=6, pretrain_overrides=(("train_fraction", 0.5),),
        tune_epochs=10, whitebox_epochs=3, whitebox_train_limit=5000,
        whitebox_batch_size=64, whitebox_seeds=(0,), cifar10c_severities=(5,), test_limit=3000,
        clip_backbone="clip_vit_narrow", clip_noise_levels=(0.0, 0.1, 0.3),
        # ~400 NMTune runs per task: the ID task only (an OOD task would double the CPU time).
        ablation_tasks=("cifar10",)),
    "cpu_seeds": Scale(
        name="cpu_seeds",
        description=("CPU scale: CIFAR-100 pre-training on all 50k training images at 32 px, "
                     "quarter-width ResNet-18 (CIFAR stem, D = 128), 20 epochs in bf16, "
                     "noise 0 / 5 / 10 / 20 / 30 %, 3 pre-training seeds (the replicates), "
                     "1 tuning seed per model; 10 black-box tuning epochs (LP / MLP / NMTune); "
                     "full test sets, "
                     "CIFAR-10-C at severity 5, PACS photo -> other domains and PACS with sketch "
                     "held out; 2-core CPU"),
        upstream="cifar100", image_size=32,
        backbones=("resnet18_cifar_narrow",),
        noise_levels=(0.0, 0.05, 0.1, 0.2, 0.3), pretrain_seeds=(0, 1, 2), tune_seeds=(0,),
        # PACS tuned on photo alone sits 9.4 points over chance with the clean model, under the
        # 10-point gate of the verdicts; tuned on three domains with sketch held out (the
        # domain-generalisation protocol) it carries signal. Both are stored; the gate decides.
        id_tasks=("cifar10",), ood_tasks=("cifar10c", "pacs_photo", "pacs_heldout_sketch"),
        # bf16 + channels-last: 2.0x the float32 throughput on this CPU at the same loss
        # (python -m nml bench pretrain); 20 epochs x 15 models fit the grid's ~6 CPU-hours.
        pretrain_epochs=20, pretrain_overrides=(("precision", "bf16"),),
        tune_epochs=10, cifar10c_severities=(5,),
        clip_backbone="clip_vit_narrow", clip_noise_levels=(0.0, 0.1, 0.3),
        ablation_tasks=("cifar10",)),
    "cifar": Scale(
        name="cifar",
        description=("CIFAR scale: CIFAR-100 pre-training at 32 px, ResNet-18 (CIFAR stem) / "
                     "small ViT, 30 epochs, 3 seeds, GPU"),
        upstream="cifar100", image_size=32,
        backbones=("resnet18_cifar", "vit_small_cifar"),
        noise_levels=(0.0, 0.05, 0.1, 0.2, 0.3), pretrain_seeds=(0, 1, 2), tune_seeds=(0, 1, 2),
        id_tasks=("cifar10", "caltech101"), ood_tasks=("pacs_photo", "pacs_sketch", "cifar10c"),
        pretrain_epochs=30, clip_backbone="clip_vit_small"),
}


def get_scale(scale: str | Scale) -> Scale:
    """The :class:`Scale` named ``scale`` (ConfigError naming the known ones otherwise)."""
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {tuple(SCALES)}")
    return SCALES[scale]


def replay_or_compute(store: ResultStore, experiment: str, config, compute, *,
                      replay_only: bool, recompute: bool, where: str) -> Unit:
    """The one replay-or-compute rule: the stored unit of ``config``, else ``compute()`` stored
    (``recompute``: always computed). ``replay_only`` (a book build) forbids computing: a missing
    unit raises :class:`MissingResult` saying it is not stored ``where``. Used by
    :class:`Pipeline` (every chapter) and chapter 07's grids (:mod:`nml.practical`)."""
    if replay_only:
        unit = store.get(experiment, config)
        if unit is None:
            raise MissingResult(f"{experiment} unit {store.key(experiment, config)} is not "
                                f"stored {where}")
        return unit
    return store.run(experiment, config, compute, recompute=recompute)


class Pipeline:
    """Compute-or-replay access to every unit of one scale (see the module docstring)."""

    def __init__(self, scale: str | Scale = "tiny", *, store: ResultStore | None = None,
                 data_root: str | Path | None = None, device: str | None = None,
                 progress: bool = True, recompute: bool = False, replay_only: bool = False,
                 checkpoint_dir: str | Path | None = None):
        self.scale = get_scale(scale)
        self.store = store if store is not None else ResultStore()
        self.data_root = data_root
        self.device = pick_device(device)
        self.progress = progress
        self.recompute = recompute
        self.replay_only = replay_only
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else \
            default_cache_root() / "checkpoints"
        self._backbones: dict[str, object] = {}
        # pcfg hash -> the stored and this run's test accuracy, for a model trained again after
        # its checkpoint was lost (CPU training is not bit-reproducible): see _train.
        self._retrained: dict[str, dict] = {}
        self._tasks: dict[str, object] = {}

    # -- configs ---------------------------------------------------------------------------
    def pretrain_config(self, backbone: str, noise: float, seed: int, **overrides):
        """The :class:`~nml.pretrain.PretrainConfig` of one pre-trained model at this scale."""
        from .pretrain import PretrainConfig
        values = dict(scale=self.scale.name, dataset=self.scale.upstream, backbone=backbone,
                      noise=noise, seed=seed, epochs=self.scale.pretrain_epochs,
                      image_size=self.scale.image_size)
        values.update(dict(self.scale.pretrain_overrides))
        if is_clip_backbone(backbone):
            values.update(dict(self.scale.clip_overrides))
        values.update(overrides)
        return PretrainConfig.from_dict(values)

    def _run(self, experiment: str, config, compute) -> Unit:
        """Replay a stored unit; compute it only when allowed (``replay_only`` forbids it)."""
        return replay_or_compute(self.store, experiment, config, compute,
                                 replay_only=self.replay_only, recompute=self.recompute,
                                 where=f"at scale {self.scale.name!r}")

    def _labels(self, pcfg) -> dict:
        return {"scale": self.scale.name, "backbone": pcfg.backbone, "noise": pcfg.noise,
                "pretrain_seed": pcfg.seed}

    # -- pre-training ------------------------------------------------------------------------
    def _train(self, pcfg):
        from .pretrain import pretrain
        key = pcfg.hash()
        if key not in self._backbones:
            result = pretrain(pcfg, root=self.data_root, checkpoint_dir=self.checkpoint_dir,
                              device=str(self.device), progress=self.progress)
            self._backbones[key] = result
            stored = self.store.get(*self.pretrain_ref(pcfg))
            if stored is not None:
                metric = "zero_shot_accuracy" if is_clip_backbone(pcfg.backbone) else "accuracy"
                value = stored.rows.loc[stored.rows["metric"] == metric, "value"]
                if len(value) and float(value.iloc[0]) != float(result.test_accuracy):
                    self._retrained[key] = {
                        "stored_test_accuracy": float(value.iloc[0]),
                        "this_run_test_accuracy": float(result.test_accuracy),
                        "why": "the stored model's checkpoint was not available, so the same "
                               "pre-training config was trained again; CPU training is not "
                               "bit-reproducible, so this unit's backbone is a re-run of the "
                               "stored one, not the same weights"}
        return self._backbones[key]

    def retrained_note(self, pcfg) -> dict:
        """``{"backbone_retrained": {...}}`` when this pipeline trained ``pcfg``'s model again
        and its test accuracy differs from the stored pre-training unit's (else ``{}``): stored
        in the info of every unit computed from that backbone, so that a unit's provenance
        says when its model is a re-run. Used by :meth:`tune` and :meth:`spectrum`."""
        note = self._retrained.get(pcfg.hash())
        return {"backbone_retrained": note} if note else {}

    def pretrain(self, pcfg) -> Unit:
        """Pre-train one model (or replay its stored result): clean test accuracy, noise rate.

        CLIP models (:mod:`nml.clip`) report ``zero_shot_accuracy``, the swapped-caption rate
        as ``train_noise_rate`` and ``caption_mismatch_rate``; their units (and every unit of
        their features) are stored under experiment ``clip``.
        """
        clip = is_clip_backbone(pcfg.backbone)

        def compute() -> UnitOutput:
            result = self._train(pcfg)
            base = {**self._labels(pcfg), "seed": pcfg.seed, "method": "pretrain",
                    "task": pcfg.dataset, "test_set": "test"}
            rows = [{**base, "metric": "zero_shot_accuracy" if clip else "accuracy",
                     "value": float(result.test_accuracy)},
                    {**base, "metric": "train_noise_rate",
                     "value": float(result.train_noise_rate)}]
            rows += [{**base, "metric": k, "value": float(v)} for k, v in result.extra.items()]
            return UnitOutput(rows=rows, info={"history": result.history},
                              device=str(self.device), data_checksum=self._checksum(pcfg.dataset))
        return self._run(*self.pretrain_ref(pcfg), compute)

    def pretrain_ref(self, pcfg) -> tuple[str, object]:
        """``(experiment, config)`` under which :meth:`pretrain` stores ``pcfg``'s unit
        (``ResultStore.key(*ref)`` is its key; nothing is computed). Used by :mod:`nml.lease`."""
        return ("clip" if is_clip_backbone(pcfg.backbone) else "pretrain"), pcfg

    def spectrum_ref(self, pcfg, task_name: str) -> tuple[str, dict]:
        """``(experiment, config)`` of :meth:`spectrum`'s unit. Used by :mod:`nml.lease`."""
        return ("clip" if is_clip_backbone(pcfg.backbone) else "spectrum",
                {"pretrain": pcfg.to_dict(), **self._task_key(task_name)})

    def tune_ref(self, pcfg, task_name: str, tcfg, *,
                 experiment: str | None = None) -> tuple[str, dict]:
        """``(experiment, config)`` of :meth:`tune`'s unit. Used by :mod:`nml.lease`."""
        from .tune import BLACKBOX_METHODS
        if is_clip_backbone(pcfg.backbone):
            experiment = "clip"
        experiment = experiment or EXPERIMENT_OF[tcfg.method]
        unit_config = {"pretrain": pcfg.to_dict(), **self._task_key(task_name),
                       "tune": tcfg.to_dict()}
        if tcfg.method not in BLACKBOX_METHODS:
            unit_config["train_limit"] = self.scale.whitebox_train_limit
        return experiment, unit_config

    def backbone(self, pcfg):
        """The pre-trained backbone (trained now, or resumed from its checkpoints)."""
        return self._train(pcfg).backbone

    # -- downstream data and features ------------------------------------------------------------
    def task(self, name: str):
        """A downstream task with this scale's choice of test sets (see ``Scale``)."""
        from .data import Task, load_task
        if name not in self._tasks:
            task = load_task(name, root=self.data_root, image_size=self.scale.image_size)
            keys = [k for k in task.tests if "@" not in k
                    or int(k.split("@")[1]) in self.scale.cifar10c_severities]
            tests = {}
            for key in keys:
                data = task.tests[key]
                if self.scale.test_limit is not None and len(data) > self.scale.test_limit:
                    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
                    data = data.subset(keep[:self.scale.test_limit].sort().values)
                tests[key] = data
            self._tasks[name] = Task(task.name, task.kind, task.train, tests)
        return self._tasks[name]

    def _task_key(self, task_name: str) -> dict:
        """What identifies a task's data in store keys: name, test-set selection, data version."""
        from .data import TASKS
        if task_name not in TASKS:
            raise ConfigError(f"unknown task {task_name!r}; known tasks: {', '.join(TASKS)}")
        key = {"task": task_name, "test_limit": self.scale.test_limit,
               "image_size": self.scale.image_size}
        if task_name == "cifar10c":
            key["severities"] = list(self.scale.cifar10c_severities)
        if TASKS[task_name].dataset.startswith("synthetic"):
            from . import data
            key["synthetic_version"] = data.SYNTHETIC_VERSION
        return key

    def _checksum(self, *datasets: str) -> str:
        """Provenance: the SHA256 of each tarball used, or the synthetic generator's version."""
        from . import data
        parts = []
        for name in datasets:
            if name.startswith("synthetic"):
                parts.append(f"{name}:{data.synthetic_version()}")
            elif name in data.DATASETS and not name.startswith(("torchvision:", "imagefolder:")):
                try:
                    root = data.data_root(self.data_root)
                    parts.append(f"{name}:{data.expected_checksum(root, name + '.tar.xz')}")
                except Exception:  # provenance only; loading reports a missing root clearly
                    parts.append(f"{name}:unknown")
            else:
                parts.append(f"{name}:unverified")
        return ";".join(parts)

    def _stats(self, pcfg):
        """The normalisation the model was pre-trained with (recorded by nml.pretrain)."""
        result = self._train(pcfg)
        return result.mean, result.std

    def features(self, pcfg, task_name: str, *, augment_seed: int | None = None,
                 augmentation: str = "pad_crop") -> dict:
        """Frozen features of a task's train and test sets, extracted once and cached.

        ``augment_seed`` augments the train images (``augmentation``: see
        :func:`nml.features.extract_features`); the test images never are. The cache key holds
        the weights' fingerprint (:func:`nml.features.weights_fingerprint`), so the backbone is
        loaded (or trained) first, and a re-trained model never replays an earlier run's features.
        """
        from .features import cached_features, extract_features, weights_fingerprint
        task = self.task(task_name)
        # The weights, not only the config, identify the features: a model trained again after
        # its checkpoint was lost is another model (and _train records that it is a re-run).
        model = self.backbone(pcfg)
        payload = {"pretrain": pcfg.to_dict(), "weights": weights_fingerprint(model),
                   **self._task_key(task_name), "augment_seed": augment_seed}
        if augmentation != "pad_crop":   # the default stays out of the key
            payload["augmentation"] = augmentation

        def compute():
            mean, std = self._stats(pcfg)
            out = {"train/x": extract_features(model, task.train.images, mean, std,
                                                device=self.device, augment_seed=augment_seed,
                                                augmentation=augmentation),
                   "train/y": task.train.labels}
            for name, data in task.tests.items():
                out[f"test/{name}/x"] = extract_features(model, data.images, mean, std,
                                                         device=self.device)
                out[f"test/{name}/y"] = data.labels
            return out
        tensors = cached_features(payload, compute)
        tests = {k.split("/")[1]: (tensors[k], tensors[k[:-1] + "y"])
                 for k in tensors if k.startswith("test/") and k.endswith("/x")}
        return {"train": (tensors["train/x"], tensors["train/y"]), "tests": tests,
                "num_classes": len(task.train.classes), "kind": task.kind}

    # -- spectra of frozen features ------------------------------------------------------------
    def spectrum(self, pcfg, task_name: str) -> Unit:
        """SVE, LSVR and singular values of the frozen features on a task's data, under the
        paper's definition (metrics ``sve`` / ``lsvr``, arrays ``<test set>``) and the authors'
        preprocessing (``sve_authors`` / ``lsvr_authors``, ``authors/<test set>``;
        :func:`nml.spectrum.spectrum_rows`)."""

        def compute() -> UnitOutput:
            feats = self.features(pcfg, task_name)
            rows, arrays = self.spectrum_output(pcfg, task_name, feats)
            return UnitOutput(rows=rows, arrays=arrays, device=str(self.device),
                              info=self.retrained_note(pcfg),
                              data_checksum=self._checksum(pcfg.dataset, _task_dataset(task_name)))
        return self._run(*self.spectrum_ref(pcfg, task_name), compute)

    def spectrum_experiment(self, pcfg) -> str:
        """The store experiment of a spectrum unit: ``clip`` for CLIP models, else ``spectrum``."""
        return "clip" if is_clip_backbone(pcfg.backbone) else "spectrum"

    def spectrum_key(self, pcfg, task_name: str) -> dict:
        """The unit config (store key) of a spectrum unit."""
        return {"pretrain": pcfg.to_dict(), **self._task_key(task_name)}

    def spectrum_output(self, pcfg, task_name: str, feats: dict,
                        preprocessings: tuple[str, ...] | None = None
                        ) -> tuple[list[dict], dict]:
        """Rows and arrays of a spectrum unit from its features (``Pipeline.features``), under
        ``preprocessings`` (default: both). Also used by ``scripts/migrate_spectrum_authors.py``
        to add the authors' rows to units stored before they existed."""
        from .spectrum import PREPROCESSINGS, spectrum_rows
        base = {**self._labels(pcfg), "seed": pcfg.seed, "method": "frozen", "task": task_name}
        rows, arrays = [], {}
        sets = {"train": feats["train"][0],
                **{name: f for name, (f, _) in feats["tests"].items()}}
        for name, f in sets.items():
            r, a = spectrum_rows(f, name, preprocessings or PREPROCESSINGS)
            rows += [{**base, **row} for row in r]
            arrays.update(a)
        return rows, arrays

    # -- tuning ---------------------------------------------------------------------------
    def tune(self, pcfg, task_name: str, tcfg, *, experiment: str | None = None) -> Unit:
        """One downstream tuning run (black-box on cached features, white-box on the model)."""
        from .tune import BLACKBOX_METHODS, tune_backbone, tune_on_features
        experiment, unit_config = self.tune_ref(pcfg, task_name, tcfg, experiment=experiment)

        def compute() -> UnitOutput:
            if tcfg.method in BLACKBOX_METHODS:
                view2 = None
                if tcfg.authors and tcfg.method != "lp":
                    # The authors' two independently augmented views (crop 80-100 % + flip),
                    # each extracted once and cached (their code re-augments every epoch).
                    feats, second = (self.features(pcfg, task_name, augment_seed=seed,
                                                   augmentation="resized_crop")
                                     for seed in authors_view_seeds(tcfg.seed))
                    view2 = second["train"][0]
                else:
                    feats = self.features(pcfg, task_name,
                                          augment_seed=tcfg.seed if tcfg.augment else None)
                result = tune_on_features(*feats["train"], feats["tests"], feats["num_classes"],
                                          tcfg, device=self.device, progress=self.progress,
                                          train_features_view2=view2)
                kind = feats["kind"]
            else:
                task = self.task(task_name)
                kind = task.kind
                train = task.train
                limit = self.scale.whitebox_train_limit
                if limit is not None and len(train) > limit:
                    keep = torch.randperm(len(train),
                                          generator=torch.Generator().manual_seed(0))[:limit]
                    train = train.subset(keep.sort().values)
                mean, std = self._stats(pcfg)
                tests = {n: (d.images, d.labels) for n, d in task.tests.items()}
                result = tune_backbone(self.backbone(pcfg), train.images, train.labels, tests,
                                       len(train.classes), tcfg, mean=mean, std=std,
                                       device=self.device, progress=self.progress)
            # the weight the regulariser really had: 1 for the authors' code, which has no lambda
            lam = tcfg.loss_config().lam if tcfg.authors and tcfg.uses_nmtune else tcfg.lam
            base = {**self._labels(pcfg), "seed": tcfg.seed, "method": tcfg.method,
                    "task": task_name, "fraction": tcfg.fraction, "lam": lam,
                    "label_noise": tcfg.label_noise}
            rows = [{**base, **m} for m in result.metrics]
            if kind == "ood":
                rows += _mean_over_targets(rows, base)
            if tcfg.label_noise > 0:   # chapter 09 shows it: stored, never recomputed
                rows.append({**base, "test_set": "train", "metric": "train_noise_rate",
                             "value": result.train_noise_rate})
            return UnitOutput(rows=rows, arrays=result.singular_values,
                              info={"history": result.history, **self.retrained_note(pcfg)},
                              device=str(self.device),
                              data_checksum=self._checksum(pcfg.dataset,
                                                           _task_dataset(task_name)))
        return self._run(experiment, unit_config, compute)

    def tune_config(self, method: str, seed: int = 0, **overrides):
        """A :class:`~nml.tune.TuneConfig` with this scale's epoch counts."""
        from .tune import BLACKBOX_METHODS, TuneConfig
        values = {"method": method, "seed": seed, "epochs": self.scale.tune_epochs}
        if method not in BLACKBOX_METHODS:
            values.update(epochs=self.scale.whitebox_epochs,
                          batch_size=self.scale.whitebox_batch_size)
        return TuneConfig.from_dict({**values, **overrides})


def authors_view_seeds(seed: int) -> tuple[int, int]:
    """Augmentation seeds of the two views of the authors' black-box tuning run ``seed``."""
    return 1_000_003 + 2 * seed, 1_000_004 + 2 * seed


def _task_dataset(task_name: str) -> str:
    from .data import TASKS
    return TASKS[task_name].dataset


def _mean_over_targets(rows: list[dict], base: dict) -> list[dict]:
    """OOD tasks: the mean of each metric over the target test sets (test_set='mean')."""
    by_metric: dict[str, list[float]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r["value"])
    return [{**base, "test_set": "mean", "metric": m, "value": float(np.mean(v))}
            for m, v in by_metric.items()]


def run_tiny_pipeline(store: ResultStore | None = None, *, progress: bool = False,
                      methods=BLACKBOX_METHODS) -> dict:
    """The whole tiny pipeline: pre-train at three noise levels, LP / MLP / NMTune, spectra.

    Returns counts of the units made; used by ``python -m nml tiny`` and the tests.
    """
    pipe = Pipeline("tiny", store=store, progress=progress)
    scale = pipe.scale
    units = {"pretrain": 0, "spectrum": 0, "tune": 0}
    backbone = scale.backbones[0]
    for noise in scale.noise_levels:
        pcfg = pipe.pretrain_config(backbone, noise, scale.pretrain_seeds[0])
        pipe.pretrain(pcfg)
        units["pretrain"] += 1
        for task in scale.tasks:
            pipe.spectrum(pcfg, task)
            units["spectrum"] += 1
            for method in methods:
                pipe.tune(pcfg, task, pipe.tune_config(method, seed=scale.tune_seeds[0]))
                units["tune"] += 1
    return units

