"""Errors raised by hybridkv.

Every error is a one-line message that names the problem and the fix. The CLI prints them on stderr
without a traceback and exits with code 2.
"""

from __future__ import annotations


class HybridKVError(Exception):
    """Base class: anything the user can fix by changing an input or an option."""


class ConfigError(HybridKVError, ValueError):
    """An option is out of range or inconsistent (budget, threshold, chunk size, ...)."""


class BudgetError(ConfigError):
    """A KV budget that cannot be honoured (<= 0, > 1 as a ratio, not an int >= 1 as tokens)."""


class UnsupportedModelError(HybridKVError):
    """The model's architecture has no adapter."""


class ModelLoadError(HybridKVError):
    """A model name or directory could not be loaded offline."""


class InputError(HybridKVError, ValueError):
    """A missing or unreadable image, an empty prompt, a prompt longer than the model's context."""


class CacheStateError(HybridKVError, RuntimeError):
    """The cache was used in a way its phase does not allow (e.g. without the hybridkv attention)."""


class StorageError(HybridKVError, OSError):
    """The cold tier could not store chunks (disk full, directory not writable)."""
