"""Benchmarks measured side by side in one run (``python -m nml bench <name>``).

* :mod:`nml.benchmarks.nmtune_speed`: MLP tuning vs NMTune with the exact and the fast SVD term.
* :mod:`nml.benchmarks.blackbox_cache`: cached features vs backbone-in-the-loop tuning.
* :mod:`nml.benchmarks.pretrain_speed`: pre-training throughput.

Each module has ``run(...) -> dict``. Used by chapter 10_runtime.
"""
