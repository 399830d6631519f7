"""nml: Noisy Model Learning, reproduced.

A thin package behind the book. Its modules, grouped by role (``tests/test_layout.py`` checks
that no import cycle runs through them, counting imports inside functions; that no module
imports another's ``_private`` names; that none is over 700 lines; and that a function over 80
lines says why in a ``# long:`` comment)::

    errors              the one-line error types (ConfigError, DataError, NMLError)
    vocab               methods, method -> experiment, lambda's default, the paper's noise levels
    config              strict, hash-keyed experiment configs
    guards              finite-loss and parameter guards; the one device choice (pick_device)
    storage             atomic file writes and the default results / cache roots
    results             the result store: hash-keyed units, provenance, index.csv
    index_columns       index columns derived from unit configs (noise_type, variant)
    data/               datasets and tasks (package):
      core              dataset names, ImageData, data and cache folders, seeded split
      archives          offline tarballs: checksums, decoding pool, decoded cache
      external          torchvision datasets and ImageFolder trees
      synthetic         the synthetic world of the tiny scale
      tasks             load_images and the downstream task registry
      text              SST-2 and IMDB
      tensors           normalisation, channel statistics, GPU augmentation
      classes           CIFAR-100 class tables
    noise               label noise (cleanlab), asymmetric noise, caption swaps
    corruptions         CIFAR-10-C style corruptions
    spectrum            SVD metrics (SVE, LSVR, spectrum groups)
    losses              NMTune's three terms
    training            what supervised and CLIP pre-training share (config, schedule, checkpoints)
    pretrain            supervised pre-training
    clip                CLIP backbones, pre-training and zero-shot
    models              backbones (timm, open_clip towers) and LoRA (peft)
    features            frozen-feature extraction and its cache
    tune                downstream tuning: LP, MLP, NMTune, LoRA, LoRA + NMTune, FT
    experiments         scales and the compute-or-replay Pipeline
    chapters            each chapter's parameters and grids
    live                chapter 06's live lambda explorer
    labels              names on figures and the caption format
    tables              statistics over seeds (mean, interval, effects of noise)
    display             show() and the myst-nb plugin
    spectrum_figures    spectrum and lambda-slider figures
    plots               the other figures; re-exports labels, tables, display, spectrum_figures
    practical           the paper's practical models (registry) and chapter 07's shared unit steps
    practical_text      chapter 07's text path (encoder, text grid, parameters, figure)
    practical_vision    chapter 07's vision path (EfficientNet-Lite0)
    scorecard/          the reproduction scorecard (package):
      rules             constants scored against, verdicts, the rule, t-interval
      source            the result index as the scorecard reads it
      select            Claim, row selection, per-cell effects
      claims            the paper's claims as data
      measure           measure / score a claim; the chapters' verdict sentences
      render            the markdown page
      page              writing the page; python -m nml scorecard
    bundle              lease bundles: pack, verify, import
    lease               GPU leases: fill a scale in short prepared runs
    bookcheck           a built book with a cell error is a failed build
    benchmarks/         side-by-side speed benchmarks (package)
    cli                 python -m nml
"""

__version__ = "0.1.0"


def _one_line_errors_in_ipython() -> None:
    """In a notebook, show an :class:`~nml.errors.NMLError` as one line, not a traceback.

    The message already names the problem and the fix; the frames below it are noise to a
    reader. The cell still fails (the kernel reports an error, so papermill and the book build
    stop and ``make book`` fails); only what the page shows is shortened, to the line the
    command line prints. Nothing happens outside IPython. Used by every chapter.
    """
    import sys
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    from .errors import NMLError

    def one_line(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)   # the kernel's error output, one line
        return stb
    shell.set_custom_exc((NMLError,), one_line)


_one_line_errors_in_ipython()
