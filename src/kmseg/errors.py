"""The kmseg exception family and warnings.

Every error kmseg raises for bad input is a :class:`KmsegError`. Each one also
derives from the built-in exception a Python user would expect (``ValueError``,
``TypeError``, ``FileNotFoundError``, ``PermissionError``...), so ``except ValueError``
or ``except OSError`` keeps working. The message names the file or parameter, repeats
the bad value and says the fix.
"""

from __future__ import annotations

import functools
import os
import sys
from errno import EACCES, EPERM

__all__ = [
    "ConvergenceWarning",
    "CorruptImageError",
    "ImageError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "InvalidImageDataError",
    "KmsegError",
    "NotAnImageError",
    "NotFittedError",
    "OutputError",
    "OutputExistsError",
    "OutputPermissionError",
    "PaletteFileError",
    "PaletteNotFoundError",
    "ParameterError",
    "ParameterTypeError",
    "ReadWarning",
]


class KmsegError(Exception):
    """Base class of every error kmseg raises on purpose."""


class ParameterError(KmsegError, ValueError):
    """A parameter has a value that is out of range or unknown."""


class ParameterTypeError(KmsegError, TypeError):
    """A parameter has the wrong type (for example a list where an array is needed)."""


class NotFittedError(KmsegError, ValueError, AttributeError):
    """An estimator was used before ``fit``.

    Its bases are those of scikit-learn's ``NotFittedError``. Once scikit-learn has been
    imported, the error raised (by :func:`not_fitted`) is also an instance of
    ``sklearn.exceptions.NotFittedError``, so code written for scikit-learn's estimators
    catches it as theirs; kmseg never imports scikit-learn for it.
    """

    def __reduce__(self) -> tuple:
        # Rebuilt by ``not_fitted``: the class it picks depends on what the unpickling process imported.
        return (not_fitted, self.args)


def not_fitted(message: str) -> NotFittedError:
    """A :class:`NotFittedError`, which is also ``sklearn.exceptions.NotFittedError`` when
    scikit-learn has been imported (code that catches that class must have imported it)."""
    sk = sys.modules.get("sklearn.exceptions")
    base = getattr(sk, "NotFittedError", None)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        return NotFittedError(message)
    return _not_fitted_with(base)(message)


@functools.cache
def _not_fitted_with(base: type) -> type:
    """kmseg's ``NotFittedError`` that is also ``base`` (scikit-learn's), made once."""
    return type("NotFittedError", (NotFittedError, base), {"__module__": __name__, "__doc__": NotFittedError.__doc__})


class ImageError(KmsegError):
    """An image could not be read. The message names the file and the problem."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image path does not exist or is not a file."""


class NotAnImageError(ImageError, ValueError):
    """The file exists but is not in an image format kmseg can read."""


class CorruptImageError(ImageError, ValueError):
    """The file is an image but is truncated or corrupt."""


class ImageTooLargeError(ImageError, ValueError):
    """The image has more pixels than the decompression-bomb limit allows.

    ``problem`` is the message without its fix, and ``pixels`` the image's pixel count (the
    smallest limit that lets it through), for front ends whose users fix it another way.
    """

    problem: str = ""
    pixels: int = 0


class InvalidImageDataError(ImageError, ValueError):
    """The pixel values cannot be clustered (NaN or infinite values, bad shape or dtype)."""


class PaletteFileError(KmsegError, ValueError):
    """A palette file cannot be read back (:func:`kmseg.io.read_palette`): an unknown suffix,
    or not in the format its suffix names, or malformed. The message names the file, and the
    line (or the colour) where the problem is."""


class PaletteNotFoundError(PaletteFileError, FileNotFoundError):
    """The palette file does not exist, or is not a file."""


class OutputExistsError(KmsegError, FileExistsError):
    """An output file exists already and ``force`` was not given."""


class OutputError(ParameterError, OSError):
    """An output cannot be written where it was asked for: its folder cannot be made or written
    in (no permission, a read-only or full disk), or a file or a folder is in the way.

    It is an ``OSError``, as Python's own failures to write a file are, and a
    :class:`ParameterError` (a ``ValueError``), which is what kmseg raised for it before, so
    ``except ParameterError`` keeps catching it. ``errno`` is the system's error number
    (``errno.ENOSPC``, ``errno.ENOTDIR``...), or None; the message is the one line.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno  # set after: OSError's own arguments would put "[Errno n]" in the message

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.errno)


class OutputPermissionError(OutputError, PermissionError):
    """An :class:`OutputError` because the system denied permission (``errno.EACCES``, ``errno.EPERM``)."""


def cannot_write(message: str, errno: int | None = None) -> OutputError:
    """The error for an output that cannot be written: an :class:`OutputPermissionError` when
    ``errno`` says permission was denied, else an :class:`OutputError`."""
    cls = OutputPermissionError if errno in (EACCES, EPERM) else OutputError
    return cls(message, errno)


#: How a message names the way to overwrite; the command line prints "pass --force" instead
#: (``kmseg.cli.cli_wording``).
PASS_FORCE = "pass force=True (CLI: --force)"
#: How a message sends a scheduler address back to be checked; on the command line, to ``--scheduler``.
CHECK_SCHEDULER = "check the address (scheduler=, CLI: --scheduler)"
#: How a message offers the in-memory path for a TIFF the chunked path cannot read; the command
#: line, which took the chunked path for a TIFF over ``--max-pixels``, says how to go back.
IN_MEMORY = "segment it in memory with kmseg.segment"


def exists_already(path: object, more: int = 0) -> OutputExistsError:
    """The error for an output ``path`` that exists (and ``more`` others that do)."""
    also = f" (and {more} more)" if more else ""
    return OutputExistsError(f"{path} exists already{also}; {PASS_FORCE} to overwrite it")


class ConvergenceWarning(UserWarning):
    """The fit is valid but not what was asked for (for example fewer distinct colours than k)."""


def naming(where: str, message: str) -> str:
    """``message`` begun with ``where`` (a file's name and ": "), unless it names it already
    (a :class:`ReadWarning` does)."""
    return message if message.startswith(where) else f"{where}{message}"


class ReadWarning(UserWarning):
    """A file was read, but it holds more than what was read (a TIFF of several images)."""


_PACKAGE = os.path.dirname(__file__) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes ``warnings.warn``, called by the function that calls this,
    point at the first frame outside the kmseg package: the user's own line, however deep in
    kmseg the warning is raised, so that moving code never breaks it (what Python 3.12's
    ``skip_file_prefixes`` does): ``warnings.warn(message, category, stacklevel=user_stacklevel())``.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1, for messages: ``counted(1, "colour")`` is
    ``"1 colour"``, ``counted(2, "colour")`` is ``"2 colours"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def listed(names: list[str] | tuple[str, ...]) -> str:
    """Names joined for messages: ``listed(["a", "b", "c"])`` is ``"a, b or c"``."""
    names = list(names)
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
