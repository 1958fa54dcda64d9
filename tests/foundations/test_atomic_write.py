"""Atomic writes: whole files or none, ordinary permissions, no temporary outliving its writer."""

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from support.confined import PYTHON, kill_when, temporaries

from system.atomic_write import (
    atomic_output,
    check_writable,
    is_temporary,
    remove_orphans,
)

# Writes a big file slowly through atomic_output, or holds one open: a writer to kill or to spare.
WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from system.atomic_write import atomic_output
with atomic_output(sys.argv[1]) as temporary:
    with open(temporary, "wb") as handle:
        while True:
            handle.write(b"x" * 65536)
            handle.flush()
            time.sleep(0.01)
"""


def writer(target):
    return [PYTHON, "-c", WRITER.format(root=str(ROOT)), str(target)]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_permissions_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        with atomic_output(tmp_path / "out.csv") as temporary:
            with open(temporary, "w") as handle:
                handle.write("a,b\n")
        with open(tmp_path / "plain.csv", "w") as handle:
            handle.write("a,b\n")
    finally:
        os.umask(previous)
    mode = (tmp_path / "out.csv").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.csv").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_block_leaves_nothing_and_names_the_target(tmp_path):
    target = tmp_path / "result.mp4"
    with pytest.raises(OSError) as caught:
        with atomic_output(target) as temporary:
            open(temporary, "wb").write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", temporary)
    assert caught.value.filename == str(target)  # the user's file, not the hidden temporary
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_is_removed_by_the_next_write_into_its_folder(tmp_path):
    target = tmp_path / "checkpoint_step000000002.pth"
    kill_when(writer(target), lambda: any(p.stat().st_size > 0 for p in temporaries(tmp_path)))
    orphans = temporaries(tmp_path)
    assert len(orphans) == 1 and orphans[0].name.startswith(".checkpoint_step000000002.pth.")
    with atomic_output(tmp_path / "checkpoint_step000000003.pth") as temporary:  # another file, same folder
        open(temporary, "wb").write(b"new")
    assert temporaries(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_step000000003.pth"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    process = subprocess.Popen(writer(tmp_path / "a.mp4"))
    try:
        deadline = time.monotonic() + 60
        while not temporaries(tmp_path):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        assert remove_orphans(tmp_path) == 0
        with atomic_output(tmp_path / "b.mp4") as temporary:
            open(temporary, "wb").write(b"b")
        assert len(temporaries(tmp_path)) == 1  # still there, still growing
    finally:
        process.kill()
        process.wait()
    assert remove_orphans(tmp_path) == 1


def test_files_that_only_look_hidden_are_not_temporaries(tmp_path):
    assert is_temporary(".out.mp4.ab12cd_9.mp4") and is_temporary(".checkpoint.pth.k2j4h5g6.pth")
    assert not is_temporary(".out.mp4.backup.mp4") and not is_temporary(".bashrc")
    assert not is_temporary("out.mp4.ab12cd34.mp4") and not is_temporary(".out.mp4.ab12cd34.wav")
    (tmp_path / ".notes.txt.ab12cd34.md").write_text("mine")  # another suffix: not ours
    assert remove_orphans(tmp_path) == 0


def test_check_writable_names_the_folder(tmp_path, monkeypatch):
    assert check_writable(tmp_path / "new" / "folder") == tmp_path / "new" / "folder"
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing, not even the folder
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError) as caught:
        check_writable(tmp_path / "ro")
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(tmp_path / "ro")


def test_an_interrupt_while_the_temporary_is_made_leaves_nothing(tmp_path, monkeypatch):
    from system import atomic_write

    def interrupted(handle, operation):
        raise KeyboardInterrupt  # Ctrl-C between the temporary's creation and its lock

    monkeypatch.setattr(atomic_write.fcntl, "flock", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "out.csv"):
            pass
    assert list(tmp_path.iterdir()) == []


class Alarm(BaseException):
    """Raised by a signal handler, as KeyboardInterrupt is: at whatever instruction comes next."""


def test_a_signal_at_any_instant_of_a_write_leaves_no_temporary(tmp_path):
    # A timer interrupts writes at random instants, the open of the temporary included (where a
    # Ctrl-C used to be raised after the file was made but before it was recorded for clean-up).
    armed = False

    def alarm(signum, frame):
        nonlocal armed
        if armed:
            armed = False
            raise Alarm

    previous = signal.signal(signal.SIGALRM, alarm)
    random = np.random.default_rng(0)
    try:
        for _ in range(3000):
            try:
                try:
                    armed = True
                    signal.setitimer(signal.ITIMER_REAL, random.uniform(0, 3e-4))
                    with atomic_output(tmp_path / ".done") as temporary:
                        Path(temporary).write_text("5")
                finally:
                    armed = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except Alarm:
                pass
            # Once the exception is let go, as cli.run lets Ctrl-C go: one raised as the block
            # exits, before contextlib resumes the writer, leaves it to be closed then.
            assert temporaries(tmp_path) == []
    finally:
        signal.signal(signal.SIGALRM, previous)
