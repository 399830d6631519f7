"""nml: Noisy Model Learning, reproduced.

A thin package behind the book: data and noise (:mod:`nml.data`, :mod:`nml.noise`), backbones
and pre-training (:mod:`nml.models`, :mod:`nml.pretrain`), downstream tuning (:mod:`nml.tune`:
LP, MLP, NMTune, LoRA, LoRA + NMTune, full fine-tuning), feature spectra (:mod:`nml.spectrum`,
:mod:`nml.losses`), the result store (:mod:`nml.results`), the experiment pipeline that the
chapters call (:mod:`nml.experiments`) and plots (:mod:`nml.plots`).
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
