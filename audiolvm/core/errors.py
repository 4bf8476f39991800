"""The project's own error types: errors a user can fix (a bad flag, config, file or corpus), as opposed to bugs.

The console script prints an :class:`AudiolvmError` as one line (``audiolvm <command>: error: <message>``, exit
code 2) and lets every other exception keep its traceback, so a real bug is never mistaken for a user error
(``--debug`` shows the traceback of user errors too). Each type also derives from the builtin a caller would
catch for it (``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working.

A message names the file or field, what is wrong with it and the fix.
"""

from __future__ import annotations


class AudiolvmError(Exception):
    """Base of the errors a user can fix."""


class UsageError(AudiolvmError, ValueError):
    """A bad command-line argument, or a value that does not fit the run or model it is used with."""


class MissingFileError(AudiolvmError, FileNotFoundError):
    """A file or folder that the command needs is not there (a checkpoint, a corpus, a clip)."""


class UnknownNameError(AudiolvmError, KeyError):
    """A name that is not one of the choices (a speaker, a level, a registered kind); the message lists them."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedError(AudiolvmError, TypeError):
    """The model or run cannot do what was asked (e.g. codes from a continuous bottleneck)."""


class StorageError(AudiolvmError, OSError):
    """No place to write what a command must write (every candidate folder is read-only or full)."""
