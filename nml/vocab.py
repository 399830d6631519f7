"""The project's vocabulary: method names, store experiments and the paper's constants, each
written once. Every other module imports these names from here.

Nothing here computes anything; the modules that use a fact say why they use it. Used by every
chapter (through :mod:`nml.tune`, :mod:`nml.experiments`, :mod:`nml.chapters`,
:mod:`nml.plots` and :mod:`nml.scorecard`).
"""

from __future__ import annotations

__all__ = ["METHODS", "BLACKBOX_METHODS", "WHITEBOX_METHODS", "NMTUNE_METHODS", "PAPER_LAMBDA",
           "EXPERIMENT_OF", "PAPER_NOISE", "SLIGHT_NOISE", "VARIANT_EXPERIMENTS",
           "NOISE_TYPE_EXPERIMENTS", "VARIANT_KNOBS", "DERIVED_COLUMNS"]

#: Downstream tuning methods (paper Sec. 6): linear probing, MLP tuning and black-box NMTune on
#: frozen features; LoRA, LoRA + NMTune (parameter-efficient NMTune) and full fine-tuning.
METHODS = ("lp", "mlp", "nmtune", "lora", "lora_nmtune", "ft")
#: Methods that tune a head on frozen (cached) features.
BLACKBOX_METHODS = ("lp", "mlp", "nmtune")
#: Methods that update the backbone (own seeds and training-set limit per scale).
WHITEBOX_METHODS = ("lora", "lora_nmtune", "ft")
#: Methods that add NMTune's three regularisation terms (weighted by lambda).
NMTUNE_METHODS = ("nmtune", "lora_nmtune")

#: NMTune weight lambda of the paper (Sec. 6.1: 0.01 for all experiments); NMTune rows at other
#: lambdas are slider runs.
PAPER_LAMBDA = 0.01

#: The store experiment that holds each method's main runs (``pretrain`` and ``frozen``, the
#: frozen features' spectrum, included). Other experiments reuse the method names for
#: ablations, noisy downstream labels or benchmarks; their rows must not mix into the main
#: comparison.
EXPERIMENT_OF = {"pretrain": "pretrain", "frozen": "spectrum", "lp": "linear_probe",
                 "mlp": "nmtune", "nmtune": "nmtune", "lora": "lora", "lora_nmtune": "lora",
                 "ft": "finetune"}

#: The paper's pre-training noise ratios (Sec. 4.1).
PAPER_NOISE = (0.0, 0.05, 0.1, 0.2, 0.3)
#: The paper's "slight" pre-training noise ratios (Sec. 4.3.1: "e.g., 5% or 10%").
SLIGHT_NOISE = (0.05, 0.1)

#: Store experiments whose units differ only by tuning knobs (chapter 11's one-factor
#: ablations), and the knobs that make a variant (nml.tune.TuneConfig fields; lambda is not
#: one: NMTune rows are kept at PAPER_LAMBDA anyway).
VARIANT_EXPERIMENTS = ("ablation",)
VARIANT_KNOBS = ("w_mse", "w_cov", "w_svd", "svd_top_k", "svd_method", "mlp_hidden_mult",
                 "mlp_layers", "mlp_activation", "residual_mlp", "variant", "batch_size",
                 "res_scale_init")
#: Store experiments whose units are pre-trained models of either noise type
#: (nml.pretrain.PretrainConfig.noise_type): chapter 08 stores its asymmetric-noise models
#: beside chapter 01's symmetric ones.
NOISE_TYPE_EXPERIMENTS = ("pretrain",)

#: Columns of ``results/index.csv`` that the store derives from each unit's config rather than
#: from its rows (:mod:`nml.index_columns`).
DERIVED_COLUMNS = ("noise_type", "variant")
