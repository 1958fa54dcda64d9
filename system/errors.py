"""The one exception type for problems with the user's input (files, flags, checkpoints),
and the one wording of the environment's refusals (a full disk, a read-only folder).

Scripts print either as a single line and exit non-zero (see ``cli.run``); anything else
that escapes is a bug and keeps its traceback.
"""

import contextlib
import errno
import math
import os


class UserError(Exception):
    """Bad input that the user can fix; the message says what is wrong and, if known, what to do."""


@contextlib.contextmanager
def naming(path, *aliases):
    """OSErrors raised inside that name no file (a failed write() names none) or one of
    ``aliases`` (a temporary stand-in) are raised again naming ``path``."""
    try:
        yield
    except OSError as error:
        if error.filename is None or error.filename in aliases:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def describe_os_error(error):
    """One line for an OSError: the cause in words, then the path it concerns (if it names one)."""
    reason = error.strerror or (os.strerror(error.errno) if error.errno else str(error))
    if error.filename is None:
        return reason
    path = error.filename
    causes = {
        errno.ENOSPC: f"no space left on the device of {path}",
        errno.EDQUOT: f"disk quota exceeded on the device of {path}",
        errno.EFBIG: f"{path}: file too large (the file system's or this process's file size limit, ulimit -f)",
        errno.EROFS: f"{path} is read-only (read-only file system)",
        errno.EACCES: f"{path}: permission denied",
        errno.EPERM: f"{path}: operation not permitted",
        errno.ENOENT: f"{path}: no such file or folder",
    }
    return causes.get(error.errno, f"{path}: {reason}")


def check_number(flag, value, low, high=None, whole=False):
    """Refuse ``value`` for ``flag`` unless it is a finite number from ``low`` to ``high``
    (no upper bound when None), in one line naming the flag and the value."""
    if not within(value, low, high) or (whole and value != int(value)):
        kind = "a whole number" if whole else "a finite number"
        bounds = f" from {low} to {high}" if high is not None else f", {low} or more"
        shown = f"{value:g}" if isinstance(value, float) else value
        raise UserError(f"{flag} must be {kind}{bounds}, not {shown}")


def within(value, low, high=None):
    """Whether ``value`` is finite and from ``low`` to ``high`` (None: no upper bound)."""
    finite = isinstance(value, int) or math.isfinite(value)  # an int of any size is finite; math.isfinite may overflow
    return finite and low <= value and (high is None or value <= high)
