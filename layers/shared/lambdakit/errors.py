"""Exception types of lambdakit, all derived from one base."""

from __future__ import annotations

__all__ = ["LambdaKitError"]


class LambdaKitError(Exception):
    """Base class of every error raised by lambdakit."""
