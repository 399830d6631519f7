"""nml: Noisy Model Learning, reproduced.

A thin package behind the book: data and noise (:mod:`nml.data`, :mod:`nml.noise`), backbones
and pre-training (:mod:`nml.models`, :mod:`nml.pretrain`), downstream tuning (:mod:`nml.tune`:
LP, MLP, NMTune, LoRA, LoRA + NMTune, full fine-tuning), feature spectra (:mod:`nml.spectrum`,
:mod:`nml.losses`), the result store (:mod:`nml.results`), the experiment pipeline that the
chapters call (:mod:`nml.experiments`) and plots (:mod:`nml.plots`).
"""

__version__ = "0.1.0"
