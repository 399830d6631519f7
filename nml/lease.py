"""GPU leases: fill a scale in short, prepared runs that write one importable bundle.

GPU time comes rarely and in short leases (book/rerun.md): a few minutes on one GPU, a
64 MiB working tree, at most 8 files back. Three steps use such a lease:

* :func:`plan` (``python -m nml lease plan``): the units of the scale still missing from the
  store, in :data:`PRIORITIES` order, with estimated GPU seconds per unit: the median of
  stored GPU-measured units of the same kind, else the H100 calibration of
  ``../shared/DESIGN.md`` (:data:`CALIBRATION`), and the estimate says which;
* :func:`run_lease` (``lease run --minutes M --out DIR``): runs the highest-priority missing
  units that fit the budget in ``N`` worker processes on one device (``N`` from a measured
  probe, :func:`probe_workers`, unless given), each worker writing to a private store inside
  the bundle folder, never into ``results/``; it stops before the budget ends (a unit not
  finished is left out) and packs one bundle: ``manifest.json`` (provenance, timings, unit
  list), ``units.tar.gz`` (the units' JSON and arrays), ``log.jsonl`` and ``SHA256SUMS``;
* :func:`import_bundle` (``lease import BUNDLE``): checks the checksums, recomputes every
  unit's key from its config, checks the code version, refuses a bundle whose unit conflicts
  with a stored one (same key, other content), and only then merges it into the store.

Units are grouped by pre-trained model: a worker trains (or resumes) one model and runs that
model's missing units; no two workers hold the same model at once.

Used by book/rerun.md and ``python -m nml lease``; the bundle format is :mod:`nml.bundle`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import queue
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .bundle import BUNDLE_FORMAT, code_fingerprint, import_bundle, pack_bundle
from .errors import ConfigError, NMLError
from .results import ResultStore, provenance
from .vocab import BLACKBOX_METHODS, WHITEBOX_METHODS

__all__ = ["PRIORITIES", "CALIBRATION", "LeaseUnit", "lease_units",
           "missing_units", "estimate_seconds", "plan", "probe_workers", "run_lease",
           "import_bundle"]

#: What each priority adds; each lease is useful on its own (issue 13's order).
PRIORITIES = {
    1: "first (convolutional) backbone at every noise level and pre-training seed: pre-training, "
       "spectra, LP / MLP / NMTune on the first ID task and CIFAR-10-C (or the first OOD task)",
    2: "GPU benchmarks of chapter 10 (nmtune-speed, blackbox-cache, pretrain), run alone",
    3: "second (transformer) backbone: pre-training, spectra, LP, LoRA, LoRA + NMTune, FT",
    4: "the scale's CLIP model: pre-training with swapped captions, spectra, LP / MLP / NMTune",
    5: "the remaining tasks (Caltech-101, PACS) for every backbone above",
}

#: The measured H100 calibration (../shared/DESIGN.md), used when no GPU timing is stored.
CALIBRATION = {
    "pretrain_epoch_s": 1.6,       # ResNet-18 (CIFAR stem), 50k CIFAR-100 images: 1.2-1.6 s
    "reference_backbone": "resnet18_cifar",
    "mlp_step_ms": 0.55,           # whole MLP-tuning step, batch 256 x 512
    "exact_svd_ms": 8.0,           # torch.linalg.svdvals on 256 x 512 (exact NMTune term)
    # Not measured on a GPU (lease priority 2 measures it): the fast term is about 150 small
    # kernels (Gram squarings, power and Newton-Schulz steps) at ~10 us launch cost each.
    "fast_svd_ms": 1.5,
    "extract_images_per_s": 100_000,   # frozen-feature extraction (3x the training rate)
    # CIFAR-10-C test sets are corrupted on the CPU for every model (nml.corruptions): 10.4 s
    # per 1,000 images x 10 corruptions on one thread of the 2-core dev CPU at load 15 (about a
    # 1/7 share), so about 75 s for 10,000 x 50 on one quiet thread; counted with 2 threads.
    "cifar10c_corrupt_cpu_s": 75.0,
}

_BENCHMARKS = (("nmtune-speed", {"steps": 200}), ("blackbox-cache", {}), ("pretrain", {}))
_PACK_MARGIN_S = 20.0


@dataclasses.dataclass(frozen=True)
class LeaseUnit:
    """One unit a lease can run: what to compute, its store key and its priority."""

    priority: int
    kind: str                     # pretrain | frozen | tune | bench
    experiment: str
    key: str
    backbone: str | None = None
    noise: float | None = None
    pretrain_seed: int | None = None
    task: str | None = None
    method: str | None = None
    seed: int | None = None
    bench: str | None = None

    @property
    def model(self) -> tuple | None:
        return None if self.kind == "bench" else (self.backbone, self.noise, self.pretrain_seed)

    @property
    def label(self) -> str:
        if self.kind == "bench":
            return f"bench {self.bench}"
        where = f"{self.backbone} noise={self.noise:g} seed={self.pretrain_seed}"
        if self.kind == "pretrain":
            return f"pretrain {where}"
        if self.kind == "frozen":
            return f"spectrum {where} {self.task}"
        return f"{self.method} {where} {self.task} tune_seed={self.seed}"


def _p1_tasks(scale) -> tuple[str, ...]:
    ood = ("cifar10c",) if "cifar10c" in scale.ood_tasks else scale.ood_tasks[:1]
    return scale.id_tasks[:1] + ood


def _model_units(pipe, priority, backbone, tasks, methods, with_pretrain=True):
    """Units of every (noise, seed) model of ``backbone``: pre-training, spectra, tuning."""
    from .clip import is_clip_backbone
    scale = pipe.scale
    noise_levels = scale.clip_noise_levels if is_clip_backbone(backbone) else scale.noise_levels
    out = []
    whitebox = scale.whitebox_seeds or scale.tune_seeds
    for noise in noise_levels:
        for pseed in scale.pretrain_seeds:
            pcfg = pipe.pretrain_config(backbone, noise, pseed)
            base = dict(priority=priority, backbone=backbone, noise=noise, pretrain_seed=pseed)
            if with_pretrain:
                exp, cfg = pipe.pretrain_ref(pcfg)
                out.append(LeaseUnit(kind="pretrain", experiment=exp,
                                     key=pipe.store.key(exp, cfg), **base))
            for task in tasks:
                exp, cfg = pipe.spectrum_ref(pcfg, task)
                out.append(LeaseUnit(kind="frozen", experiment=exp,
                                     key=pipe.store.key(exp, cfg), task=task, **base))
                for method in methods:
                    for tseed in (whitebox if method in WHITEBOX_METHODS
                                  else scale.tune_seeds):
                        exp, cfg = pipe.tune_ref(pcfg, task, pipe.tune_config(method, tseed))
                        out.append(LeaseUnit(kind="tune", experiment=exp,
                                             key=pipe.store.key(exp, cfg), task=task,
                                             method=method, seed=tseed, **base))
    return out


def lease_units(scale: str = "cifar", priorities=(1, 2, 3, 4, 5), *,
                store: ResultStore | None = None) -> list[LeaseUnit]:
    """Every unit of ``priorities`` at ``scale``, in priority order (stored or not).

    Used by :func:`plan` and :func:`run_lease`.
    """
    from .benchmarks.store import EXPERIMENT
    from .experiments import Pipeline
    unknown = sorted(set(priorities) - set(PRIORITIES))
    if unknown:
        raise ConfigError(f"unknown lease priorities {unknown}; choose from {sorted(PRIORITIES)}")
    pipe = Pipeline(scale, store=store or ResultStore(), device="cpu", progress=False)
    sc = pipe.scale
    p1 = _p1_tasks(sc)
    rest = tuple(t for t in sc.tasks if t not in p1)
    vit = sc.backbones[1:2]
    units: list[LeaseUnit] = []
    for priority in sorted(priorities):
        if priority == 1:
            units += _model_units(pipe, 1, sc.backbones[0], p1, BLACKBOX_METHODS)
        elif priority == 2:
            for name, kwargs in _BENCHMARKS:
                cfg = {"benchmark": name, "device_kind": "gpu", "kwargs": kwargs}
                units.append(LeaseUnit(priority=2, kind="bench", experiment=EXPERIMENT,
                                       key=pipe.store.key(EXPERIMENT, cfg), bench=name))
        elif priority == 3 and vit:
            units += _model_units(pipe, 3, vit[0], p1, ("lp", "lora", "lora_nmtune", "ft"))
        elif priority == 4:
            units += _model_units(pipe, 4, sc.clip_backbone, p1, BLACKBOX_METHODS)
        elif priority == 5 and rest:
            units += _model_units(pipe, 5, sc.backbones[0], rest, BLACKBOX_METHODS,
                                  with_pretrain=False)
            for b in vit:
                units += _model_units(pipe, 5, b, rest, ("lp", "lora", "lora_nmtune", "ft"),
                                      with_pretrain=False)
            units += _model_units(pipe, 5, sc.clip_backbone, rest, BLACKBOX_METHODS,
                                  with_pretrain=False)
    return units


def missing_units(store: ResultStore, scale: str = "cifar", priorities=(1, 2, 3, 4, 5)):
    """The units of :func:`lease_units` whose JSON is not in ``store``."""
    return [u for u in lease_units(scale, priorities, store=store)
            if not store.paths(u.experiment, u.key)[0].exists()]


# -- estimates ------------------------------------------------------------------------------

def _flops(backbone: str, image_size: int) -> float:
    """Forward FLOPs of one image through ``backbone`` (counted by torch, on the CPU)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .models import build_backbone
    model = build_backbone(backbone, 10, image_size=image_size).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, image_size, image_size))
    return float(counter.get_total_flops())


def _stored_gpu_seconds(store: ResultStore, scale: str) -> dict:
    """Median GPU seconds of stored units per (experiment, method, backbone, task)."""
    found: dict[tuple, list[float]] = {}
    for folder in sorted(p for p in store.root.glob("*") if p.is_dir()):
        if folder.name in ("runtime", "lease"):
            continue
        for unit in store.units(folder.name):
            prov = unit.provenance
            if not prov.get("gpu") or not prov.get("seconds") or unit.rows.empty:
                continue
            row = unit.rows.iloc[0]
            if row.get("scale") != scale:
                continue
            key = (unit.experiment, row.get("method"), row.get("backbone"), row.get("task"))
            found.setdefault(key, []).append(float(prov["seconds"]))
    return {k: float(np.median(v)) for k, v in found.items()}


class _Estimator:
    """Estimated single-process GPU seconds per unit (stored timings, else the calibration)."""

    def __init__(self, store: ResultStore, scale):
        from .experiments import get_scale
        self.scale = get_scale(scale)
        self.stored = _stored_gpu_seconds(store, self.scale.name)
        self._flops: dict[str, float] = {}

    def _ratio(self, backbone: str) -> float:
        if backbone not in self._flops:
            try:
                self._flops[backbone] = _flops(backbone, self.scale.image_size) / _flops(
                    CALIBRATION["reference_backbone"], 32)
            except Exception:  # a CLIP tower or a missing library: assume the reference cost
                self._flops[backbone] = 1.0
        return self._flops[backbone]

    def _train_images(self, task: str | None) -> int:
        if task is None:   # the upstream set: CIFAR-100 train (or the synthetic upstream set)
            return 50_000 if self.scale.upstream == "cifar100" else 4_000
        return {"cifar10": 50_000, "cifar10c": 50_000, "caltech101": 5_784}.get(
            task, 1_200 if task.startswith("pacs") else 2_000)

    def seconds(self, unit: LeaseUnit) -> tuple[float, str]:
        if unit.kind == "bench":
            return {"nmtune-speed": 30.0, "blackbox-cache": 60.0, "pretrain": 60.0}[unit.bench], \
                "guess (benchmark's own step counts)"
        method = {"pretrain": "pretrain", "frozen": "frozen"}.get(unit.kind, unit.method)
        key = (unit.experiment, method, unit.backbone, unit.task)
        if key in self.stored:
            return self.stored[key], "stored GPU timing"
        sc, ratio = self.scale, self._ratio(unit.backbone)
        epoch = CALIBRATION["pretrain_epoch_s"] * ratio * self._train_images(None) / 50_000
        if unit.kind == "pretrain":
            return sc.pretrain_epochs * epoch + 10.0, "H100 calibration"
        if unit.kind == "frozen":   # feature extraction of train + every test set, then SVDs
            tests = 10_000 * (10 * len(sc.cifar10c_severities) if unit.task == "cifar10c" else 1)
            images = self._train_images(unit.task) + tests
            corrupt = CALIBRATION["cifar10c_corrupt_cpu_s"] / 2 * len(
                sc.cifar10c_severities) / 5 if unit.task == "cifar10c" else 0.0
            return images * ratio / CALIBRATION["extract_images_per_s"] + 5.0 + corrupt, \
                "H100 calibration" + (" + CPU corruption estimate" if corrupt else "")
        n = self._train_images(unit.task)
        if unit.method in WHITEBOX_METHODS:
            limit = sc.whitebox_train_limit or n
            per_image = CALIBRATION["pretrain_epoch_s"] * ratio / 50_000
            cost = sc.whitebox_epochs * min(n, limit) * per_image * (1.3 if "nmtune" in
                                                                    unit.method else 1.0)
            return cost + 5.0, "H100 calibration"
        steps = sc.tune_epochs * math.ceil(n / 256)
        step_ms = CALIBRATION["mlp_step_ms"] + (CALIBRATION["fast_svd_ms"]
                                               if unit.method == "nmtune" else 0.0)
        return steps * step_ms / 1000 + 3.0, "H100 calibration (+ estimated fast SVD term)" \
            if unit.method == "nmtune" else "H100 calibration"


def estimate_seconds(unit: LeaseUnit, store: ResultStore | None = None,
                     scale: str = "cifar") -> tuple[float, str]:
    """Estimated GPU seconds of one unit on one process, and where the estimate comes from."""
    return _Estimator(store or ResultStore(), scale).seconds(unit)


def plan(scale: str = "cifar", priorities=(1, 2, 3, 4, 5), *,
         store: ResultStore | None = None) -> pd.DataFrame:
    """The missing units in priority order with their estimated GPU seconds and its source.

    Columns: ``priority, label, experiment, key, seconds, source``. A group's pre-training is
    counted again where a later priority needs a model whose unit is stored but whose weights
    (never stored) a fresh machine must retrain: those rows say ``(retrain weights)``.

    Used by ``python -m nml lease plan``.
    """
    store = store or ResultStore()
    est = _Estimator(store, scale)
    rows, retrained = [], set()
    for unit in missing_units(store, scale, priorities):
        if unit.kind != "pretrain" and unit.model is not None and unit.priority == 5 \
                and unit.model not in retrained:
            retrained.add(unit.model)
            pre = dataclasses.replace(unit, kind="pretrain", task=None, method=None, seed=None)
            seconds, source = est.seconds(pre)
            rows.append({"priority": 5, "label": pre.label + " (retrain weights)",
                         "experiment": "-", "key": "-", "seconds": seconds, "source": source})
        seconds, source = est.seconds(unit)
        rows.append({"priority": unit.priority, "label": unit.label,
                     "experiment": unit.experiment, "key": unit.key, "seconds": seconds,
                     "source": source})
    return pd.DataFrame(rows, columns=["priority", "label", "experiment", "key", "seconds",
                                       "source"])


# -- the probe: how many concurrent processes one device takes ------------------------------

def _probe_worker(rank, backbone, image_size, batch, device, threads, seconds, levels,
                  barrier, counts):
    import torch
    import torch.nn.functional as nnf

    from .models import build_backbone
    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(rank)
    model = build_backbone(backbone, 100, image_size=image_size).to(dev)
    cuda = dev.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, image_size, image_size, device=dev)
    y = torch.randint(0, 100, (batch,), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = nnf.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(3):   # warm-up: kernels, allocator
        step()
    if cuda:
        torch.cuda.synchronize(dev)
    for i, level in enumerate(levels):
        barrier.wait()
        if rank < level:
            done, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                step()
                done += batch
            if cuda:
                torch.cuda.synchronize(dev)
            counts[i * max(levels) + rank] = done / (time.perf_counter() - t0)
        barrier.wait()


def probe_workers(scale: str = "cifar", device: str | None = None, levels=(1, 2, 4, 8),
                  seconds: float = 4.0) -> dict:
    """Measure training throughput with 1, 2, 4, 8 concurrent processes on one device.

    Every process trains the scale's first backbone on a random batch (bf16 on CUDA) for
    ``seconds`` per level, all levels in one spawn (processes above the level wait at a
    barrier). Returns ``{"images_per_s": {level: total}, "workers": N, ...}`` where ``N`` is
    the smallest level within 5 % of the best total throughput.

    Used by :func:`run_lease` (``--workers auto``).
    """
    import torch

    from .experiments import get_scale
    from .pretrain import PretrainConfig
    sc = get_scale(scale)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    levels = tuple(sorted(set(int(v) for v in levels)))
    top = max(levels)
    threads = max(1, (os.cpu_count() or 1) // top)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(top)
    counts = ctx.Array("d", len(levels) * top)
    start = time.perf_counter()
    procs = [ctx.Process(target=_probe_worker, daemon=True,
                         args=(r, sc.backbones[0], sc.image_size, PretrainConfig().batch_size,
                               device, threads, seconds, levels, barrier, counts))
             for r in range(top)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120 + 2 * seconds * len(levels))
        if p.is_alive():
            p.kill()
    if any(p.exitcode != 0 for p in procs):
        raise NMLError(f"the worker probe failed on {device} (exit codes "
                       f"{[p.exitcode for p in procs]}); pass --workers N to skip the probe")
    totals = {lv: float(sum(counts[i * top:i * top + lv])) for i, lv in enumerate(levels)}
    best = max(totals.values())
    chosen = min(lv for lv, t in totals.items() if t >= 0.95 * best)
    return {"images_per_s": totals, "workers": chosen, "device": _device_name(device),
            "backbone": sc.backbones[0], "seconds_per_level": seconds,
            "wall_s": time.perf_counter() - start,
            "speedup": {lv: t / totals[levels[0]] for lv, t in totals.items()}}


def _device_name(device: str) -> str:
    import torch
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


# -- workers --------------------------------------------------------------------------------

def _compute(pipe, unit: LeaseUnit, device: str) -> None:
    if unit.kind == "bench":
        from .benchmarks.store import run_and_store
        run_and_store(unit.bench, store=pipe.store, device=device, **dict(_BENCHMARKS)[unit.bench])
        return
    pcfg = pipe.pretrain_config(unit.backbone, unit.noise, unit.pretrain_seed)
    if unit.kind == "pretrain":
        pipe.pretrain(pcfg)
    elif unit.kind == "frozen":
        pipe.spectrum(pcfg, unit.task)
    else:
        pipe.tune(pcfg, unit.task, pipe.tune_config(unit.method, unit.seed))


def _worker(wid, scale, store_root, data_root, device, threads, jobs, events):
    import torch
    torch.set_num_threads(threads)
    from .experiments import Pipeline
    store = ResultStore(store_root)
    while True:
        group = jobs.get()
        if group is None:
            return
        pipe = Pipeline(scale, store=store, data_root=data_root, device=device, progress=False)
        for fields, stop_at in group:
            unit = LeaseUnit(**fields)
            t0 = time.time()
            if t0 > stop_at:
                events.put(("skip", wid, unit.key, "budget"))
                continue
            try:
                _compute(pipe, unit, device)
            except Exception as err:   # reported in the bundle's log; the lease goes on
                events.put(("error", wid, unit.key, f"{type(err).__name__}: {err}"[:500]))
            else:
                events.put(("done", wid, unit.key, time.time() - t0))
        events.put(("idle", wid, None, None))


def _prepare_data(scale: str, units, data_root) -> None:
    """Decode every real dataset the units need once into NML_CACHE, so that the workers
    load decoded tensors instead of each decoding the tarballs (synthetic data is made in
    memory, nothing to prepare)."""
    from .data import TASKS, load_images
    from .experiments import get_scale
    sc = get_scale(scale)
    datasets = {sc.upstream} | {TASKS[u.task].dataset for u in units if u.task}
    for name in sorted(d for d in datasets if not d.startswith("synthetic")):
        load_images(name, "all" if name == "pacs" else "train", root=data_root,
                    image_size=sc.image_size, domain="photo" if name == "pacs" else None)


def _fits(now, seconds, deadline) -> bool:
    return now + seconds <= deadline


# -- the lease ------------------------------------------------------------------------------

def _stored_probe(store: ResultStore, device_name: str, backbone: str) -> dict | None:
    best = None
    for unit in store.units("lease"):
        info = unit.info.get("probe")
        if info and info.get("device") == device_name and info.get("backbone") == backbone:
            if best is None or unit.provenance.get("created", "") > best[0]:
                best = (unit.provenance.get("created", ""), info)
    return best[1] if best else None


def run_lease(minutes: float, out: str | os.PathLike, *, workers: int | None = None,
              scale: str = "cifar", priorities=(1, 2, 3, 4, 5), device: str | None = None,
              data_root: str | os.PathLike | None = None, store: ResultStore | None = None,
              progress: bool = True, probe_seconds: float = 4.0) -> Path:
    """Run the highest-priority missing units that fit ``minutes``; return the bundle folder.

    ``workers=None`` takes the number of concurrent processes from a probe stored for this
    device, else measures one now (:func:`probe_workers`, about half a minute on a GPU) and
    keeps it in the bundle (experiment ``lease``). A group (one pre-trained model's missing
    units of one priority) starts only when its estimate fits the time left; each worker
    skips a unit once the budget is spent, and at the end every worker still busy is
    stopped (its unfinished unit is not in the bundle). Benchmarks run alone.

    Used by ``python -m nml lease run``.
    """
    # long: the lease's scheduler loop (budget, workers, queue, bundle) in the order it runs
    import torch
    start = time.time()
    if minutes <= 0:
        raise ConfigError(f"--minutes must be positive, got {minutes}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    deadline = start + minutes * 60 - min(_PACK_MARGIN_S, minutes * 60 * 0.2)
    store = store or ResultStore()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is visible")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    bundle = Path(out) / f"lease-{stamp}-{scale}-p{''.join(str(p) for p in sorted(priorities))}"
    private = bundle / "store"
    private.mkdir(parents=True, exist_ok=False)
    log: list[dict] = []

    def note(event: str, **fields) -> None:
        log.append({"t": round(time.time() - start, 2), "event": event, **fields})
        if progress:
            print(json.dumps(log[-1]), flush=True)

    units = missing_units(store, scale, priorities)
    gpu = device.startswith("cuda")
    for u in units:
        if u.kind == "bench" and not gpu:
            note("skip", unit=u.label, reason="GPU benchmarks need a CUDA device")
    units = [u for u in units if gpu or u.kind != "bench"]
    est = _Estimator(store, scale)
    estimate = {u.key: est.seconds(u)[0] for u in units}
    probe = None
    if workers is None:
        probe = _stored_probe(store, _device_name(device), est.scale.backbones[0])
        if probe is None:
            levels = (1, 2, 4, 8) if gpu else tuple(
                lv for lv in (1, 2, 4, 8) if lv <= max(1, os.cpu_count() or 1))
            probe = probe_workers(scale, device, levels=levels, seconds=probe_seconds)
            ResultStore(private).put("lease", {"probe": "workers", "device": probe["device"],
                                               "backbone": probe["backbone"], "created": stamp},
                                     _probe_output(probe))
        workers = int(probe["workers"])
        note("probe", **{k: probe[k] for k in ("workers", "images_per_s", "device")})
    # Units run this much slower side by side than alone (probe: N / speedup(N)).
    slowdown = float(workers) / float((probe or {}).get("speedup", {}).get(
        workers, (probe or {}).get("speedup", {}).get(str(workers), 1.0)))
    groups: list[list[LeaseUnit]] = []
    index: dict[tuple, int] = {}
    for u in units:
        gkey = (u.priority, u.model if u.model else u.key)
        if gkey not in index:
            index[gkey] = len(groups)
            groups.append([])
        groups[index[gkey]].append(u)
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [ctx.Queue() for _ in range(workers)]
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(w, scale, str(private), None if data_root is None else
                               str(data_root), device, threads, jobs[w], events))
             for w in range(workers)]
    for p in procs:      # their imports overlap with the data preparation
        p.start()
    t0 = time.time()
    _prepare_data(scale, units, data_root)
    note("data ready", seconds=round(time.time() - t0, 1))
    busy: dict[int, tuple] = {}          # worker -> (group index, model)
    running: dict[int, tuple] = {}       # worker -> (unit key, start time)
    measured: dict[tuple, list[float]] = {}
    done: dict[str, dict] = {}
    by_key = {u.key: u for u in units}
    pending = list(range(len(groups)))

    def cost(u: LeaseUnit) -> float:
        kind = (u.kind, u.method, u.backbone, u.task, u.bench)
        if kind in measured:
            return float(np.median(measured[kind]))
        return estimate[u.key] * (1.0 if u.kind == "bench" else slowdown)

    def dispatch(w: int) -> bool:
        now = time.time()
        if any(groups[g][0].kind == "bench" for g, _ in busy.values()):
            return False     # a benchmark runs alone
        for gi in list(pending):
            group = groups[gi]
            exclusive = group[0].kind == "bench"
            if exclusive and busy:
                continue
            if any(m == group[0].model for _, m in busy.values()) and group[0].model:
                continue
            if not _fits(now, cost(group[0]), deadline):
                pending.remove(gi)
                note("skip", unit=group[0].label, reason="does not fit the time left",
                     units=len(group))
                continue
            pending.remove(gi)
            # each unit starts only while its own estimate still fits before the deadline
            stops = [(dataclasses.asdict(u), deadline - cost(u)) for u in group]
            jobs[w].put(stops)
            busy[w] = (gi, group[0].model)
            return True
        return False

    try:
        for w in range(workers):
            dispatch(w)
        while busy:
            timeout = max(0.1, min(1.0, deadline - time.time()))
            try:
                kind, w, key, value = events.get(timeout=timeout)
            except queue.Empty:
                kind = None
            if kind == "done":
                u = by_key[key]
                measured.setdefault((u.kind, u.method, u.backbone, u.task, u.bench),
                                    []).append(value)
                done[key] = {"seconds": round(value, 2), "worker": w,
                             "finished_s": round(time.time() - start, 2)}
                note("done", unit=u.label, seconds=round(value, 1), worker=w)
            elif kind in ("skip", "error"):
                note(kind, unit=by_key[key].label, reason=value, worker=w)
            elif kind == "idle":
                busy.pop(w, None)
                dispatch(w)
                for other in range(workers):   # an exclusive group may now start
                    if other not in busy:
                        dispatch(other)
            if time.time() >= deadline:
                if busy:
                    note("stop", reason="budget reached", busy_workers=sorted(busy))
                break
            if any(not p.is_alive() for p in procs) and busy:
                dead = [w for w, p in enumerate(procs) if not p.is_alive() and w in busy]
                for w in dead:
                    note("error", reason=f"worker {w} died (exit {procs[w].exitcode})")
                    busy.pop(w, None)
    finally:
        for w, p in enumerate(procs):
            if w in busy or not p.is_alive():
                p.kill()
            else:
                jobs[w].put(None)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        for q in (events, *jobs):
            q.close()
            q.cancel_join_thread()
    for gi in pending:
        note("skip", unit=groups[gi][0].label, reason="not started", units=len(groups[gi]))
    from . import __version__
    manifest = {
        "format": BUNDLE_FORMAT, "nml_version": __version__, "code": code_fingerprint(),
        "scale": scale, "priorities": list(priorities), "budget_minutes": minutes,
        "elapsed_s": round(time.time() - start, 2), "workers": workers,
        "threads_per_worker": threads, "probe": probe,
        "provenance": provenance(device=_device_name(device)),
    }
    labels = {k: {"priority": u.priority, "label": u.label, **done.get(k, {})}
              for k, u in by_key.items()}
    return pack_bundle(bundle, private, manifest, labels, log)


def _probe_output(probe: dict):
    from .results import UnitOutput
    rows = [{"scale": "gpu-bench" if probe["device"] != "cpu" else "cpu-bench",
             "backbone": probe["backbone"], "noise": None, "pretrain_seed": None, "seed": 0,
             "method": "lease-probe", "task": "random_batch", "metric": f"images_per_s@{lv}",
             "value": float(v)} for lv, v in probe["images_per_s"].items()]
    return UnitOutput(rows=rows, info={"probe": probe}, device=probe["device"])
