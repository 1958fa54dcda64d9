"""Write a file so that readers never see half of it, a failure leaves nothing behind, and no
output ever replaces an input or anything but a regular file.

A temporary file is written beside the target and renamed over it at the end. Its name,
``.<target name>.<8 random characters><suffix>``, is hidden and ends in the target's own
extension (writers such as FFmpeg's muxers choose the format by it). The writing process
holds an exclusive ``flock`` on it; a process killed mid-write (kill -9, power cut of the
job) releases the lock with its death, so the next atomic write into the same folder finds
the orphan unlocked and removes it, while another process's temporary, still being
written, is left alone.

Every output goes through ``check_output`` (``atomic_output`` calls it when it starts and again
just before the rename): a path that is, or resolves to, a folder, a device, a FIFO, a socket
or a file the run reads (``reading``) is refused in one line. A symlink to a regular file is
written through: the file it points to is replaced, the link stays.
"""

import contextlib
import errno
import os
import re
import secrets
import stat
import string
import threading
from pathlib import Path

from system.errors import UserError, naming

try:
    import fcntl
except ImportError:  # Windows: no flock; orphans are then left for the user to delete
    fcntl = None

_ALPHABET = string.ascii_lowercase + string.digits + "_"
# What tempfile.mkstemp made (older versions of this module) and what _create makes.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>(\.[^.]+)?)$")


# (device, inode) of each file a run in this process reads -> (its path, how the run names it).
_INPUTS = {}
_INPUTS_LOCK = threading.Lock()


@contextlib.contextmanager
def reading(inputs):
    """While the block runs, no output may replace any of ``inputs`` ({name in messages: path},
    e.g. {"--checkpoint_path": "wav2lip.pth"}; None paths and files that do not exist are left
    out): ``check_output`` refuses them, through symlinks and hard links too."""
    added = []
    with _INPUTS_LOCK:
        for name, path in inputs.items():
            identity = _identity(path)
            if identity is not None and identity not in _INPUTS:
                _INPUTS[identity] = (str(path), name)
                added.append(identity)
    try:
        yield
    finally:
        with _INPUTS_LOCK:
            for identity in added:
                _INPUTS.pop(identity, None)


def check_output(path, flag=None, inputs=None):
    """Refuse, in one line (a UserError), an output ``path`` that an atomic write must not
    replace: a folder, a device, a FIFO or a socket (or a symlink to one), or a file the run
    reads (``inputs``, {name: path}, and what ``reading`` holds). Returns ``path``.

    ``flag`` (e.g. "--outfile") names the path in the message.
    """
    named = f"{flag} {path}" if flag else str(path)
    link = " (through a symlink)" if Path(path).is_symlink() else ""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        target = Path(os.path.realpath(path))
        if link and not target.parent.is_dir():  # a shell's > fails too: never make a missing mount point's folders
            raise UserError(f"{named} is a symlink to {target}, whose folder does not exist") from None
        return path  # a new file (or a dangling link, written through like a shell's >)
    except NotADirectoryError:
        raise UserError(f"{named}: a part of the path before its name is a file, not a folder") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"{named} is a symlink that leads back to itself (a loop); name a file") from None
        return path  # unreadable: the write itself says why
    kind = _KINDS.get(stat.S_IFMT(status.st_mode))
    if kind is not None:
        raise UserError(f"{named} is {kind}{link}: an output replaces only a regular file; name a file")
    identity = (status.st_dev, status.st_ino)
    read = {_identity(source): (str(source), name) for name, source in (inputs or {}).items()}
    with _INPUTS_LOCK:
        read.update({key: value for key, value in _INPUTS.items() if key not in read})
    if identity in read:
        source, name = read[identity]
        same = "" if os.path.abspath(source) == os.path.abspath(path) else f" ({source})"
        raise UserError(f"{named} is the {name} file{same}{link} that this run reads: it would be "
                        "overwritten; choose another name")
    return path


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO (a named pipe)", stat.S_IFSOCK: "a socket"}


def _identity(path):
    """(device, inode) of the regular file ``path`` leads to, or None."""
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISREG(status.st_mode) else None


@contextlib.contextmanager
def atomic_output(path, suffix=None):
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The file is created with the permissions ``open(path, "w")`` would give (0666 less the
    umask), not the 0600 of ``tempfile``. It keeps the final extension (or ``suffix``). A
    symlink is written through (its target is replaced); ``check_output``'s refusals apply
    before the work and again before the rename.
    """
    path = _through_links(check_output(path))
    with _temporary_beside(path, suffix) as temporary:
        yield temporary
        check_output(path)  # what the path is may have changed while the block ran
        os.replace(temporary, path)


def _through_links(path):
    """``path`` with symlinks resolved, so that a link's target is replaced, not the link."""
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def scratch_file(path):
    """Yield a temporary path beside ``path``, made and locked as ``atomic_output``'s are, and
    removed at the end whatever happens; ``path`` itself is never written. Unlike a file of
    ``tempfile``, one left by a killed run is removed by the next atomic write in the folder."""
    return _temporary_beside(path, None)


@contextlib.contextmanager
def _temporary_beside(path, suffix):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    made = []  # filled by _create the moment the file exists, so a signal at any point cleans it up
    try:
        handle, temporary = _create(path, suffix if suffix is not None else path.suffix, made)
        with naming(path, temporary):  # errors name the file the user asked for
            yield temporary
    finally:
        for handle, temporary in made:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
            os.close(handle)  # releases the lock, after any rename: nobody removes a finished file


def is_temporary(path):
    """Whether ``path`` is named like an atomic write's temporary file (finished or not)."""
    match = _TEMPORARY.match(Path(path).name)
    return bool(match) and Path(match["name"]).suffix == match["suffix"]


def remove_orphans(folder):
    """Remove the temporaries in ``folder`` whose writer has died; returns how many."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(".") and is_temporary(name):
            removed += _remove_if_unlocked(Path(folder) / name)
    return removed


def _remove_if_unlocked(path):
    if fcntl is None:
        return 0
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # a live writer holds it
    else:
        with contextlib.suppress(OSError):
            os.remove(path)
            return 1
        return 0
    finally:
        os.close(handle)


def _create(path, suffix, made=None):
    """A new, locked temporary file beside ``path``: (descriptor, its path), also appended to
    ``made`` as soon as it exists (the caller removes what is there, whatever stops it)."""
    made = [] if made is None else made
    while True:
        temporary = path.parent / f".{path.name}.{''.join(secrets.choice(_ALPHABET) for _ in range(8))}{suffix}"
        try:
            handle = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            made.append((handle, str(temporary)))
        except FileExistsError:
            continue
        except BaseException:  # Ctrl-C, raised by Python at whatever instruction follows the open
            if not made or made[-1][1] != str(temporary):  # made (O_EXCL: by us) but not yet recorded
                with contextlib.suppress(OSError):
                    os.remove(temporary)
            raise
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            # A cleaner may have taken the file for an orphan between its creation and our lock.
            try:
                same = os.stat(temporary).st_ino == os.fstat(handle).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                made.pop()
                os.close(handle)
                continue
        return handle, str(temporary)


def check_writable(folder):
    """Prove that files can be written in ``folder``, before long work; returns it.

    A folder that does not exist yet is probed in its nearest existing parent and left
    uncreated (the writes themselves create it). Raises the OSError (see
    ``errors.describe_os_error``), naming the folder, when it is read-only, not writable or
    full; root ignores permission bits, so this writes rather than asks ``os.access``.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        handle, temporary = _create(probe / "write-check", "")
        try:
            os.write(handle, bytes(4096))
            os.fsync(handle)
        finally:
            os.remove(temporary)
            os.close(handle)
    except OSError as error:
        error.filename = str(folder if probe == folder else probe)
        raise
    return folder
