"""Exceptions for mistakes a user can fix. The CLI prints them as one line, without a traceback.

Messages name the problem and the fix, e.g.
``max_length=128 is too short for these graphs: the longest needs 209 tokens; raise max_length``.
"""


class FastrecurError(Exception):
    """Base class: something the user can fix (bad config, bad file, wrong shapes)."""


class ConfigError(FastrecurError, ValueError):
    """An invalid configuration value: names the key, the value and what is allowed."""


class DataFormatError(FastrecurError, ValueError):
    """A malformed or mismatched data / vocabulary file."""


class CheckpointMismatchError(FastrecurError, ValueError):
    """A checkpoint that does not fit the model: lists every missing, unexpected or misshaped name."""


class UnsafeFileError(FastrecurError, ValueError):
    """A file that names code outside the allow-list (e.g. a pickled ``os.system``): refused before
    anything from it ran."""


class TrainingDiverged(FastrecurError):
    """A loss or gradient became NaN or infinite: the run stopped, its last checkpoint left as it was."""
