"""Ctrl-C and SIGTERM end a script with one line and status 130 / 143, no traceback and no
temporary left (cli.run), as an error would."""

import signal
import subprocess
import time

import pytest
from conftest import ROOT
from support.confined import ENV, PYTHON, temporaries
from support.synthetic_weights import save_released, seeded

from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip
from system.cli import Terminated, run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    write_media(d / "long.wav", speech_like(30.0)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face.mp4", face_frames(12))
    return d


def stop_mid_write(command, folder, signum, timeout=240):
    """Run ``command``, send ``signum`` once a temporary output in ``folder`` has bytes; returns
    (exit status, stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not any(path.stat().st_size > 0 for path in temporaries(folder) if path.exists()):
            assert process.poll() is None, f"finished before the signal: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no temporary was ever written"
            time.sleep(0.01)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


@pytest.mark.parametrize("signum, status, word", [(signal.SIGTERM, 143, "terminated"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_a_stopped_lip_sync_says_one_word_and_leaves_nothing(files, tmp_path, signum, status, word):
    out = tmp_path / "results"
    command = [PYTHON, str(ROOT / "inference.py"), "--checkpoint_path", str(files / "gen.pth"),
               "--face", str(files / "face.mp4"), "--audio", str(files / "long.wav"),
               "--outfile", str(out / "result.mp4"), "--box", "20", "90", "30", "100", "--quiet"]
    code, err = stop_mid_write(command, out, signum)
    assert code == status and err.strip().splitlines() == [word], err[-3000:]
    assert list(out.iterdir()) == []  # neither the output nor its temporary


def test_sigterm_in_process_runs_the_clean_up_and_restores_the_handler():
    cleaned = []

    def main(argv):
        try:
            signal.raise_signal(signal.SIGTERM)
            time.sleep(5)  # not reached: the handler raises at once
        finally:
            cleaned.append(True)

    before = signal.getsignal(signal.SIGTERM)
    assert run(main, []) == 143 and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) == before
    assert issubclass(Terminated, BaseException) and not issubclass(Terminated, Exception)  # no except Exception eats it


# Holds a script at its first import once its stop handlers are in place (a sitecustomize the
# interpreter runs at start): the test stops it while it still imports, however slowly a loaded
# machine lets it come that far.
HOLD_AFTER_HANDLERS = """
import importlib.abc, os, signal, sys, time

class HoldAfterHandlers(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            return None
        sys.meta_path.remove(self)
        with open(os.environ["HELD_AT"], "w") as note:
            note.write(name + " " + str("numpy" in sys.modules))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return None

sys.meta_path.insert(0, HoldAfterHandlers())
"""


SCRIPTS = sorted(str(path.relative_to(ROOT)) for path in [*ROOT.glob("*.py"), *ROOT.glob("evaluation/**/*.py")]
                 if "sys.exit(run(" in path.read_text() or "sys.exit(cli.run(" in path.read_text())


def test_every_script_is_found():
    assert len(SCRIPTS) == 18 and "inference.py" in SCRIPTS and "stream.py" in SCRIPTS and "sync_audit.py" in SCRIPTS \
        and "evaluation/fid.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("signum, line, status", [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)])
def test_a_stop_while_a_script_still_imports_is_one_line(script, signum, line, status, tmp_path):
    # The handlers are in place from the script's first project import (system/startup.py),
    # before NumPy, OpenCV or torch; the reference printed the traceback of whatever import it
    # hit. (The interpreter's own first milliseconds, before any of our code, stay uncovered.)
    (tmp_path / "sitecustomize.py").write_text(HOLD_AFTER_HANDLERS)
    held = tmp_path / "held"
    env = {**ENV, "PYTHONPATH": str(tmp_path), "HELD_AT": str(held)}
    process = subprocess.Popen([PYTHON, str(ROOT / script), "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 120
    try:
        while not held.exists() or not held.read_text():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.01)
        assert held.read_text().endswith(" False")  # held before NumPy, the first heavy import
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, err) == (status, f"{line}\n")
