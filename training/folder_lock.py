"""One training run per checkpoint folder: an ``flock`` on ``<folder>/training.lock`` for the run's life.

The kernel releases an flock when its holder dies, so the lock of a run killed with kill -9
(or on a lost node) is free for the next run, which takes it over; nothing has to guess
whether a pid is still alive. The file says who holds it (pid and host), for the message
of a run refused. A run that ends removes it, still holding the lock; a run that opened the
file just before then finds, once it has the lock, that the name is no longer its file and
opens the new one.
"""

import contextlib
import os
import socket
import sys
from pathlib import Path

from errors import UserError, naming

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (as atomic_write leaves orphans there)
    fcntl = None

LOCK_NAME = "training.lock"  # not named like an atomic write's temporary, which cleaners remove


def hold(folder):
    """Lock ``folder`` (made if need be) for this process: (handle, the holder a killed run
    left in the file or None). Raises a UserError naming the folder when a live run holds it."""
    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        return None, None
    while True:
        with naming(path):
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            os.close(handle)
            raise UserError(f"--checkpoint_dir {path.parent} is in use by another training run"
                            f"{f' ({holder})' if holder else ''}; wait for it to end, or choose another folder") from None
        except OSError as error:  # a file system without locks (some network ones): train, but say so
            os.close(handle)
            print(f"warning: {path}: cannot be locked ({error.strerror}): a second run on this folder would not be "
                  "refused", file=sys.stderr)
            return None, None
        if _is_named(path, handle):
            break
        os.close(handle)  # its holder removed it as it ended: lock the file now at that name
    left = _holder(handle)
    with naming(path):
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return handle, left


def release(handle, folder):
    """Remove the lock file of ``hold`` and let the lock go."""
    if handle is None:
        return
    path = Path(folder) / LOCK_NAME
    if _is_named(path, handle):  # not a file someone else made there after deleting this one
        with contextlib.suppress(OSError):
            os.remove(path)
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
