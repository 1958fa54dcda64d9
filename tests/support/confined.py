"""Run a script as a user would, on a full disk or a read-only folder, or kill it mid-work.

A full disk is a small tmpfs and a read-only folder a read-only bind mount, both mounted in a
user and mount namespace of the child alone (``unshare -rm``, no privileges needed), so the
script meets the kernel's real ENOSPC and EROFS (root ignores permission bits, so chmod
would prove nothing). Kills are triggered by what the script has written, not by timers.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

PYTHON = sys.executable
# Every process a test compares runs with this environment: results depend on the thread count.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def script(name, *args):
    """The command line of one of the project's scripts."""
    return [PYTHON, str(ROOT / name), *map(str, args)]


def _namespaces_work():
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


NAMESPACES = _namespaces_work()
FULL_DISK = 'mount -t tmpfs -o size="$SIZE" tmpfs "$FOLDER"'
READ_ONLY = 'mount --bind "$FOLDER" "$FOLDER" && mount -o remount,bind,ro "$FOLDER"'
MORE_ROOM = 'mount -o remount,size=256m tmpfs "$FOLDER"'


def in_namespace(steps, folder, *args, size="256k", timeout=300, **variables):
    """Run the shell ``steps`` in a user and mount namespace of their own, where mounts on
    ``$FOLDER`` (FULL_DISK, READ_ONLY, MORE_ROOM) are seen by them alone. ``$PY`` is this
    Python and ``$ROOT`` the project; the project's scripts see the kernel's real ENOSPC
    and EROFS; ``args`` are the steps' "$@" and ``variables`` further environment variables. Tests that need this
    skip where user namespaces are not allowed; the same behaviour is tested in-process
    by injected errors."""
    if not NAMESPACES:
        pytest.skip("user namespaces (unshare -rm) are not allowed here")
    Path(folder).mkdir(parents=True, exist_ok=True)
    env = {**ENV, "PY": PYTHON, "ROOT": str(ROOT), "FOLDER": str(folder),
           "SIZE": size, **{name: str(value) for name, value in variables.items()}}
    return subprocess.run(["unshare", "-rm", "sh", "-c", steps, "sh", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def one_line_error(result):
    """The stderr of a failed run: one "error: ..." line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("\r", "  0%"))]
    errors = [line for line in lines if line.startswith("error: ")]
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def kill_when(command, ready, timeout=300, cwd=None):
    """Start ``command``, SIGKILL it as soon as ``ready()`` sees what it waits for on disk;
    returns the pids of the children it had then (to check that they die with it)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=cwd)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                raise AssertionError(f"finished before the kill point: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the kill point was never reached")
            time.sleep(0.005)
        children = descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    return children


def descendants(pid):
    """The pids of a process's children, grandchildren, ... (from /proc/*/stat)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found.extend(children)
        queue.extend(children)
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_gone(pids, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def temporaries(folder):
    """Hidden temporaries of atomic writes anywhere under ``folder``."""
    from system.atomic_write import is_temporary
    return sorted(p for p in Path(folder).rglob(".*") if is_temporary(p))


def tree(folder, skip=()):
    """{relative path: bytes} of every file under ``folder``."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}
