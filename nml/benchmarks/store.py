"""Benchmarks kept in the result store, so the book replays timings instead of re-timing them.

``run_and_store("nmtune-speed", steps=60)`` runs one benchmark of :mod:`nml.benchmarks` and
stores its JSON as one unit of the experiment ``runtime`` (``results/runtime/<key>.json``): one
tidy row per measured number (``metric`` = ``mlp_s``, ``ratio_fast``, ``speedup``, ...,
``method`` = the benchmark's name, ``scale`` = ``cpu-bench`` or ``gpu-bench``), the benchmark's
whole output in ``info["result"]``, and the conditions it ran under in ``info``: the load
average of the machine before and after (``os.getloadavg()``; a shared CPU makes every timing
slower, not every timing alike), the torch and OpenMP thread counts and the processor.

The key is the benchmark's name, device kind and arguments: running the same benchmark again
(``python -m nml bench nmtune-speed --steps 60 --store``) replaces the stored timing with the
new one, which is what "refresh" means for a measurement (a stored accuracy is replayed; a stored
timing is re-measured only on request).

Used by chapter 10_runtime.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..config import Config, check_range
from ..errors import ConfigError
from ..guards import check_device_param
from ..results import ResultStore, Unit, UnitOutput

__all__ = ["BENCHMARKS", "EXPERIMENT", "SETTINGS", "RuntimeParams", "run_benchmark",
           "run_and_store", "stored_benchmarks"]

#: The store experiment that holds every benchmark unit.
EXPERIMENT = "runtime"

#: Benchmark name (as on the command line) -> module in nml.benchmarks.
BENCHMARKS = {"nmtune-speed": "nmtune_speed", "blackbox-cache": "blackbox_cache",
              "pretrain": "pretrain_speed"}

#: Numeric fields of a benchmark's output that are settings, not measurements (kept in info).
SETTINGS = frozenset({"steps", "batch", "dim", "images", "batch_size", "image_size",
                      "num_workers", "torch_threads", "num_classes", "seed", "epochs"})


@dataclass(frozen=True)
class RuntimeParams(Config):
    """The papermill parameters of chapter 10_runtime (checked before anything runs)."""

    device_kind: str = "all"       # which stored timings to show: cpu | gpu | all
    refresh: bool = False          # re-time both benchmarks now and store them (book: False)
    steps: int = 60                # nmtune-speed timed steps per tuner when refreshing
    device: str | None = None      # refresh on: cpu | cuda; None: cuda when available
    load_warning: float = 1.0      # flag timings taken at a 1-minute load per core above this

    def validate(self) -> None:
        if self.device_kind not in ("cpu", "gpu", "all"):
            raise ConfigError(f"parameter 'device_kind' = {self.device_kind!r} is unknown; use "
                              f"'cpu', 'gpu' or 'all'")
        check_device_param(self.device)
        check_range("steps", self.steps, 4, None)
        check_range("load_warning", self.load_warning, 0.0, None, lo_inclusive=False)


def _processor() -> str:
    """The CPU model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(name: str, **kwargs: Any) -> dict:
    """Run benchmark ``name`` (a key of :data:`BENCHMARKS`) with ``kwargs``; its output dict.

    ``None`` values are dropped, so the benchmark's own defaults apply to them.

    Used by chapter 10_runtime (through :func:`run_and_store`) and ``python -m nml bench``.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of {tuple(BENCHMARKS)}")
    import importlib
    module = importlib.import_module(f"nml.benchmarks.{BENCHMARKS[name]}")
    return module.run(**{k: v for k, v in kwargs.items() if v is not None})


def run_and_store(name: str, *, store: ResultStore | None = None, **kwargs: Any) -> Unit:
    """Run benchmark ``name`` now and store it (replacing an earlier run with the same key).

    ``kwargs`` go to the benchmark's ``run`` (``device``, ``steps``, ...). Returns the stored
    :class:`~nml.results.Unit`; its rows are the measured numbers, ``info["result"]`` the
    benchmark's full output, ``info["loadavg_before"]`` / ``["loadavg_after"]`` the machine's
    1/5/15-minute load averages around the run.

    Used by chapter 10_runtime and ``python -m nml bench ... --store``.
    """
    import torch

    store = store or ResultStore()
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    device = kwargs.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "nmtune-speed":
        kwargs.setdefault("device", device)   # its own default is the CPU, not "the GPU if any"
    device_kind = "gpu" if str(device).startswith("cuda") else "cpu"
    config = {"benchmark": name, "device_kind": device_kind,
              "kwargs": {k: v for k, v in sorted(kwargs.items()) if k != "device"}}
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = run_benchmark(name, **kwargs)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    seed = int(result.get("seed", kwargs.get("seed", 0)))
    base = {"scale": f"{device_kind}-bench", "backbone": result.get("backbone") or "none",
            "noise": None, "pretrain_seed": None, "seed": seed, "method": name,
            "task": result.get("dataset") or "synthetic_features"}
    rows = [{**base, "metric": key, "value": float(value)} for key, value in result.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and key not in SETTINGS]
    info = {"result": result, "loadavg_before": list(load_before),
            "loadavg_after": list(load_after), "cpu_count": os.cpu_count(),
            "processor": _processor(), "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "wall_s": seconds}
    device_name = result.get("gpu") or result.get("device") or str(device)
    return store.put(EXPERIMENT, config, UnitOutput(rows=rows, info=info, device=device_name),
                     seconds=seconds)


def stored_benchmarks(store: ResultStore | None = None) -> pd.DataFrame:
    """Every stored benchmark measurement, one row per number, with the run's conditions.

    Columns: the index columns, ``key``, ``created`` (UTC time of the run), ``device``,
    ``loadavg_1m`` (the larger of the 1-minute load before and after), ``cpu_count``,
    ``torch_threads``, ``steps``. Empty (with those columns) when nothing is stored.

    Used by chapter 10_runtime.
    """
    store = store or ResultStore()
    frames = []
    for unit in store.units(EXPERIMENT):
        df = unit.rows.copy()
        info = unit.info
        df["key"] = unit.key
        df["created"] = unit.provenance.get("created")
        df["device"] = unit.provenance.get("device")
        df["loadavg_1m"] = max(info.get("loadavg_before", [float("nan")])[0],
                               info.get("loadavg_after", [float("nan")])[0])
        df["cpu_count"] = info.get("cpu_count")
        df["torch_threads"] = info.get("torch_threads")
        df["steps"] = info.get("result", {}).get("steps")
        frames.append(df)
    columns = ["experiment", "scale", "backbone", "noise", "pretrain_seed", "seed", "method",
               "task", "metric", "value", "key", "created", "device", "loadavg_1m",
               "cpu_count", "torch_threads", "steps"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)
