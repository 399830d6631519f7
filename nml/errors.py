"""Errors that name the problem and the fix.

Every user-facing mistake (bad config value, unknown dataset, missing data) is raised as a
subclass of :class:`NMLError`, so the command line and notebooks can print one clear line
instead of a stack trace from deep inside torch. Used by every chapter.
"""


class NMLError(ValueError):
    """Base class: a problem with the user's input, with the fix in the message."""


class ConfigError(NMLError):
    """A config key is unknown, has the wrong type, or is out of range."""


class DataError(NMLError):
    """A dataset is unknown, missing, corrupt, or too small for what was asked."""


class DivergedError(NMLError):
    """A training loss (or the weights) became NaN or infinite: the run is stopped, not stored."""
