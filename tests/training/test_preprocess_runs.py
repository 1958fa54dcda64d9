"""preprocess.py runs that meet: two runs on one root, a rerun after a kill, Ctrl-C, damaged audio."""

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from support.confined import (
    ENV,
    descendants,
    script,
    temporaries,
    tree,
    wait_until_gone,
)

import preprocess
from system import cli
from training import preprocessing
from training.dataset import DONE_MARKER
from training.synthetic_data import FACE_BOX, make_corpus

BOX = [str(v) for v in FACE_BOX]
CLIPS = ("speaker000/00000", "speaker000/00001", "speaker001/00000", "speaker001/00001")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Raw clips and what an uninterrupted run makes of them (in <corpus>/reference), shared by the
    tests: none writes either."""
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(folder / "raw", "raw", speakers=2, clips=2, seconds=1.0, seed=5)
    assert run(folder / "raw", folder / "reference") == 0
    return folder / "raw", tree(folder / "reference")


def run(raw, out, *extra):
    return cli.run(preprocess.main, ["--data_root", str(raw), "--preprocessed_root", str(out), "--quiet",
                                     "--audio_workers", "2", "--box", *BOX, *extra])


def complete(clip, frames=25):
    return sorted(int(p.stem) for p in clip.glob("*.jpg")) == list(range(frames)) and (clip / "audio.wav").exists()


def test_the_marker_counts_the_crops_and_a_clip_marked_done_with_crops_missing_is_redone(corpus, tmp_path, capsys):
    raw, reference = corpus
    out = tmp_path / "pre"
    shutil.copytree(raw.parent / "reference", out)
    clip = out / "speaker001" / "00000"
    assert (clip / DONE_MARKER).read_text() == "25\n"  # the number of crops the clip was marked done with
    for k in range(15, 25):  # as another run, killed, left it: marked done, 15 of 25 crops
        (clip / f"{k}.jpg").unlink()
    capsys.readouterr()
    assert run(raw, out) == 0
    assert "1 preprocessed now, 3 already done" in capsys.readouterr().out
    assert tree(out) == reference


class PausedAfterListing:
    """A progress bar whose reset (called once the run has listed the clips it counts as its
    work) waits for a cue: a run that has looked at the root and is slow to go on."""

    def __init__(self, proceed):
        self.listed, self.proceed = threading.Event(), proceed

    def reset(self, total):
        self.listed.set()
        assert self.proceed.wait(120), "never released"

    def update(self, n=1):
        pass


class StopsAt(preprocessing.FixedBoxDetector):
    """The fixed box, as a detector that stops its run at its ``call``-th batch (mid-clip), as a kill would."""

    def __init__(self, call):
        super().__init__(FACE_BOX)
        self.calls, self.call = 0, call

    def detect(self, frames):
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt
        return super().detect(frames)


def in_thread(target, *args, **kwargs):
    result = {}

    def call():
        try:
            result["value"] = target(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            result["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, result


def test_a_run_never_redoes_a_clip_another_run_has_marked_done_since_it_looked(corpus, tmp_path):
    """The "lost node": run A lists its work, then run B (the restarted job) does every clip. A,
    going on, must not redo them: redoing deletes B's crops, and A killed then left clips
    marked done with crops missing, which every rerun skipped."""
    raw, reference = corpus
    out = tmp_path / "pre"
    videos = preprocessing.find_videos(raw)
    go = threading.Event()
    paused = PausedAfterListing(go)
    # 25 frames in batches of 8: the 2nd batch is the middle of A's first clip.
    a, a_result = in_thread(preprocessing.preprocess, videos, out, [StopsAt(2)], 8, 1, progress=paused)
    assert paused.listed.wait(60)
    assert preprocessing.preprocess(videos, out, [preprocessing.FixedBoxDetector(FACE_BOX)], 8, 1).done == 4  # run B
    go.set()
    a.join(60)
    assert tree(out) == reference, f"run A, stopped, left: {[c for c in CLIPS if not complete(out / c)]}"
    assert a_result == {"value": a_result.get("value")} and a_result["value"].already_done == 4


def test_a_clip_another_run_holds_is_left_alone_and_done_once_that_run_has_let_it_go(corpus, tmp_path, capsys):
    raw, reference = corpus
    out = tmp_path / "pre"
    held = out / CLIPS[0]
    held.mkdir(parents=True)
    (held / "0.jpg").write_bytes(b"being written by the other run")
    lock = preprocessing.lock_clip(held)  # the other run, alive
    assert lock is not None and preprocessing.lock_clip(held) is None
    thread, result = in_thread(preprocessing.preprocess, preprocessing.find_videos(raw), out,
                               [preprocessing.FixedBoxDetector(FACE_BOX)], 8, 1)
    deadline = time.monotonic() + 120
    while not all((out / clip / DONE_MARKER).exists() for clip in CLIPS[1:]):
        assert thread.is_alive() and time.monotonic() < deadline, result
        time.sleep(0.01)
    assert thread.is_alive()  # waiting for the held clip
    assert sorted(p.name for p in held.iterdir()) == [".preprocess.lock", "0.jpg"]  # untouched
    assert (held / "0.jpg").read_bytes() == b"being written by the other run"
    os.close(lock)  # the other run dies without a word: the kernel lets its lock go
    thread.join(120)
    assert "error" not in result and result["value"].done == 4
    assert tree(out) == reference
    assert capsys.readouterr().err == (f"waiting for 1 clip(s) another run is preprocessing (first: {held}); each is "
                                       f"done here, or counted as done, once that run lets it go\n")


# --- Ctrl-C: SIGINT to every process of the job, as a terminal sends it --------------------------

def interrupt_when(command, ready, stop=signal.SIGINT, timeout=120):
    """Start ``command`` in a session of its own and send ``stop`` to all its processes once
    ``ready()``; returns (exit status, stderr, the pids of its children then)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"finished before the interrupt: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the interrupt point was never reached"
            time.sleep(0.005)
        children = descendants(process.pid)
        os.killpg(process.pid, stop)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, stderr, children


def test_ctrl_c_and_sigterm_print_one_line_exit_130_or_143_and_leave_nothing_a_rerun_cannot_finish(corpus, tmp_path):
    raw, reference = corpus
    out = tmp_path / "pre"
    flags = ["--data_root", raw, "--preprocessed_root", out, "--box", *BOX, "--audio_workers", "2", "--quiet"]

    def snapshot(pattern="*/*/*"):
        """{path: modification time} of the files matching ``pattern`` (those removed meanwhile left out)."""
        found = {}
        for path in out.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                found[path] = path.stat().st_mtime_ns
        return found

    def written(pattern, since):
        """How many files matching ``pattern`` are new or rewritten since the snapshot ``since``."""
        return sum(since.get(path) != stamp for path, stamp in snapshot(pattern).items())

    def leave_work(clips=2):
        """At least ``clips`` clips not done (their markers removed: they are redone whole), so
        that the next run has work left to be stopped in however far the last one got."""
        done = sorted(out.glob(f"*/*/{DONE_MARKER}"))
        total = len(list(Path(raw).rglob("*.mp4")))
        for marker in done[:max(0, clips - (total - len(done)))]:
            marker.unlink()

    # While the workers start, once they work (mid-clip; SIGTERM too, as a job scheduler sends it
    # to the whole job), and between clips. Each run picks up what the last left.
    rounds = [("*/*/*.jpg", signal.SIGINT, 130, "interrupted"), ("*/*/*.jpg", signal.SIGTERM, 143, "terminated"),
              ("*/*/audio.wav", signal.SIGINT, 130, "interrupted"), (f"*/*/{DONE_MARKER}", signal.SIGINT, 130, "interrupted")]
    for pattern, stop, code, line in rounds:
        leave_work()
        before = snapshot()
        status, stderr, children = interrupt_when(script("preprocess.py", *flags),
                                                  lambda pattern=pattern, before=before: written(pattern, before), stop)
        lines = [text for text in stderr.splitlines() if text.strip()]
        assert (status, lines) == (code, [line]), (pattern, stop, stderr[-3000:])
        assert wait_until_gone(children) == []
        assert temporaries(out) == [], pattern
    assert run(raw, out) == 0
    assert tree(out) == reference


# --- damaged audio ---------------------------------------------------------------------------------

def write_float_audio_video(path, samples, frames=25):
    """A video (the synthetic face box's size) whose audio track is 32-bit float PCM: it can hold NaN."""
    with av.open(str(path), "w", format="mov") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 160, 160, "yuv420p"
        sound = container.add_stream("pcm_f32le", rate=16000, layout="mono")
        grey = av.VideoFrame.from_ndarray(np.full((160, 160, 3), 90, np.uint8), format="rgb24")
        for _ in range(frames):
            container.mux(video.encode(grey))
        container.mux(video.encode())
        chunk = av.AudioFrame.from_ndarray(np.asarray(samples, np.float32)[None], format="flt", layout="mono")
        chunk.sample_rate = 16000
        container.mux([*sound.encode(chunk), *sound.encode()])


def test_a_video_whose_audio_holds_nan_is_a_failure_row_naming_it(corpus, tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "spk").mkdir(parents=True)
    samples = np.sin(np.arange(16000) / 10).astype(np.float32)
    samples[100:110] = np.nan
    write_float_audio_video(raw / "spk" / "nan.mp4", samples)
    write_float_audio_video(raw / "spk" / "fine.mp4", np.sin(np.arange(16000) / 10))
    out = tmp_path / "pre"
    assert run(raw, out) == 1
    assert "2 videos: 1 preprocessed now, 0 already done, 1 failed" in capsys.readouterr().out
    with open(out / preprocessing.FAILURES_NAME, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["video"], row["stage"]) for row in rows] == [(str(raw / "spk" / "nan.mp4"), "audio")]
    assert rows[0]["error"].startswith(f"{raw / 'spk' / 'nan.mp4'}: the audio holds 10 NaN sample(s)")
    assert not (out / "spk" / "nan" / DONE_MARKER).exists() and (out / "spk" / "fine" / DONE_MARKER).exists()
