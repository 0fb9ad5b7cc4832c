"""The library's exceptions: one small hierarchy, each message naming the bad value and the fix.

The serving layer maps these to HTTP statuses in one table (``deployments/errors.py``).
"""

from __future__ import annotations


class RoutersError(Exception):
    """Base class of every error the routing library raises on purpose."""


class DataError(RoutersError):
    """A data file is missing, unreadable, or has a missing / malformed field."""


class ConfigError(RoutersError, ValueError):
    """A configuration value is out of range or inconsistent."""


class CheckpointError(RoutersError):
    """A router checkpoint directory is missing, incomplete or malformed."""


class EmbeddingError(RoutersError):
    """An embedder could not be built or failed to embed."""


class UnknownRouterError(RoutersError, KeyError):
    """A router name that is neither registered nor a checkpoint directory."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class UnknownModelError(RoutersError, KeyError):
    """A model or tier name that is not in a router's vocabulary."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
