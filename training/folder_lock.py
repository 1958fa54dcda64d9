"""Locks on files, as runs take them: one training run per checkpoint folder (an ``flock`` on
``<folder>/training.lock`` for the run's life), one preprocessing run per clip (preprocessing.py).

The kernel releases an flock when its holder dies, so the lock of a run killed with kill -9
(or on a lost node) is free for the next run, which takes it over; nothing has to guess
whether a pid is still alive. The file says who holds it (pid and host), for the message
of a run refused. A run that ends removes it, still holding the lock; a run that opened the
file just before then finds, once it has the lock, that the name is no longer its file and
opens the new one.
"""

import contextlib
import errno
import os
import socket
import stat
import sys
from pathlib import Path

from system.errors import UserError, naming

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (as atomic_write leaves orphans there)
    fcntl = None

LOCK_NAME = "training.lock"  # not named like an atomic write's temporary, which cleaners remove


class Unlockable(OSError):
    """The file system refuses locks (ENOLCK: some network file systems)."""


def try_lock(path):
    """An exclusive flock on ``path`` (created if need be), without waiting: its descriptor,
    or None when a live process holds it; -1 where there is no flock (Windows). Raises
    Unlockable where the file system cannot lock. One made by a process that then removed it
    (as ``unlock`` does) is never the one locked: the file at ``path`` now is."""
    if fcntl is None:
        return -1
    while True:
        try:  # never through a symlink, never a FIFO or device: a lock file is written to
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UserError(f"{path} is a symlink: a lock file must be a regular file; remove it") from None
            raise OSError(error.errno, error.strerror, str(path)) from None
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise UserError(f"{path} is not a regular file: a lock file must be one; remove it")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            return None
        except OSError as error:
            os.close(handle)
            raise Unlockable(error.errno, error.strerror, str(path)) from None
        if _is_named(path, handle):
            return handle
        os.close(handle)  # its holder removed it as it let go: lock the file now at that name


def unlock(path, handle):
    """Remove the lock file of ``try_lock`` (still holding it, so nobody locks a file about to
    go) and let the lock go."""
    if handle is None or handle < 0:
        return
    if _is_named(path, handle):  # not a file someone else made there after deleting this one
        with contextlib.suppress(OSError):
            os.remove(path)
    os.close(handle)


def hold(folder):
    """Lock ``folder`` (made if need be) for this process: (handle, the holder a killed run
    left in the file or None). Raises a UserError naming the folder when a live run holds it."""
    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = try_lock(path)
    except Unlockable as error:  # a file system without locks (some network ones): train, but say so
        print(f"warning: {path}: cannot be locked ({error.strerror}): a second run on this folder would not be "
              "refused", file=sys.stderr)
        return None, None
    if handle is None:
        holder = _holder_at(path)
        raise UserError(f"--checkpoint_dir {path.parent} is in use by another training run"
                        f"{f' ({holder})' if holder else ''}; wait for it to end, or choose another folder")
    if handle < 0:
        return None, None
    left = _holder(handle)
    with naming(path):
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return handle, left


def release(handle, folder):
    """Remove the lock file of ``hold`` and let the lock go."""
    unlock(Path(folder) / LOCK_NAME, handle)


def _holder_at(path):
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _holder(handle)
    finally:
        os.close(handle)


def _holder(handle):
    """What the lock file says of its holder ("pid 12 on host"), or None when it says nothing."""
    try:
        return os.pread(handle, 200, 0).decode(errors="replace").strip() or None
    except OSError:
        return None


def _is_named(path, handle):
    """Whether ``path`` still names the file open at ``handle``."""
    try:
        return os.stat(path).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        return False
