"""preprocess.py on raw synthetic clips: face crops by source frame, audio.wav, resume, failures."""

import csv
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from support.confined import (
    FULL_DISK,
    MORE_ROOM,
    READ_ONLY,
    in_namespace,
    kill_when,
    one_line_error,
    script,
    temporaries,
    tree,
    wait_until_gone,
)
from support.synthetic_weights import save_released, seeded

import audio
import face_detection
import make_filelists
import preprocess
from face_detection import S3FD, S3FDDetector
from face_detection.boxes import to_int_box
from media.containers import read_frames
from media.synthetic import speech_like, write_media, write_video
from system import cli
from training import preprocessing
from training.dataset import DONE_MARKER
from training.synthetic_data import FACE_BOX, make_corpus

BOX = [str(v) for v in FACE_BOX]


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw data"  # a space: nothing goes through a shell
    make_corpus(root, "raw", speakers=2, clips=2, seconds=1.0, seed=5)
    return root


def run(raw, out, *extra):
    return cli.run(preprocess.main, ["--data_root", str(raw), "--preprocessed_root", str(out), "--quiet",
                                     "--audio_workers", "2", *extra])


def test_fixed_box_crops_every_frame_and_extracts_the_audio(raw, tmp_path, capsys):
    out = tmp_path / "pre"
    assert run(raw, out, "--box", *BOX) == 0
    assert "4 videos: 4 preprocessed now, 0 already done, 0 failed" in capsys.readouterr().out
    clip = out / "speaker001" / "00001"
    frames = list(read_frames(raw / "speaker001" / "00001.mp4"))
    assert sorted(int(p.stem) for p in clip.glob("*.jpg")) == list(range(len(frames))) == list(range(25))
    top, bottom, left, right = FACE_BOX
    for k in (0, 12, 24):
        crop = cv2.imread(str(clip / f"{k}.jpg")).astype(float)
        assert crop.shape == (bottom - top, right - left, 3)
        assert np.abs(crop - frames[k][top:bottom, left:right]).mean() < 3  # JPEG of that very frame
    wav = audio.load_wav(clip / "audio.wav", 16000)
    original = audio.load_wav(raw / "speaker001" / "00001.mp4", 16000)
    assert len(wav) == len(original) and np.abs(wav - original).max() < 1e-3  # 16-bit PCM of the track
    assert (clip / DONE_MARKER).exists()
    assert make_filelists.main(["--preprocessed_root", str(out), "--filelists", str(tmp_path / "lists"),
                                "--val", "0", "--test", "0"]) == 0
    assert sorted((tmp_path / "lists" / "train.txt").read_text().split()) == [
        "speaker000/00000", "speaker000/00001", "speaker001/00000", "speaker001/00001"]


def test_an_interrupted_run_continues_where_it_stopped(raw, tmp_path, capsys):
    out = tmp_path / "pre"
    assert run(raw, out, "--box", *BOX) == 0
    done = out / "speaker000" / "00001"
    stamp = (done / "3.jpg").stat().st_mtime_ns
    interrupted = out / "speaker001" / "00000"
    (interrupted / DONE_MARKER).unlink()  # as if stopped before the marker was written
    (interrupted / "audio.wav").unlink()
    capsys.readouterr()
    assert run(raw, out, "--box", *BOX) == 0
    assert "1 preprocessed now, 3 already done" in capsys.readouterr().out
    assert (done / "3.jpg").stat().st_mtime_ns == stamp  # finished clips are not redone
    assert (interrupted / DONE_MARKER).exists() and (interrupted / "audio.wav").exists()


def test_failed_videos_are_listed_with_the_reason(raw, tmp_path, capsys):
    (raw / "speaker000" / "broken.mp4").write_bytes(b"\x00" * 1000)
    write_media(raw / "speaker001" / "silent.mp4", None, 16000, video_codec="libx264", video_frames=20)
    out = tmp_path / "pre"
    assert run(raw, out, "--box", *BOX) == 1
    assert "6 videos: 4 preprocessed now, 0 already done, 2 failed" in capsys.readouterr().out
    with open(out / "preprocess_failures.csv", newline="") as handle:
        rows = {row["video"].split("/")[-1]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"broken.mp4", "silent.mp4"}
    assert "no audio stream" in rows["silent.mp4"]["error"] and rows["silent.mp4"]["stage"] == "audio"
    assert not (out / "speaker001" / "silent" / DONE_MARKER).exists()
    # Once the failures are gone, the next run removes the stale list.
    (raw / "speaker000" / "broken.mp4").unlink()
    (raw / "speaker001" / "silent.mp4").unlink()
    assert run(raw, out, "--box", *BOX) == 0
    assert not (out / "preprocess_failures.csv").exists()


def test_several_detectors_share_the_clips_one_thread_each(raw, tmp_path):
    """--ngpu N: one detector per GPU, each used by one thread at a time (here on the CPU)."""

    class Recording(preprocessing.FixedBoxDetector):
        def __init__(self):
            super().__init__(FACE_BOX)
            self.calls, self.threads, self.busy, self.overlapped = 0, set(), False, False

        def detect(self, frames):
            self.overlapped |= self.busy
            self.busy = True
            time.sleep(0.05)  # long enough for the other thread to ask for a detector meanwhile
            self.calls += 1
            self.threads.add(threading.get_ident())
            self.busy = False
            return super().detect(frames)

    detectors = [Recording(), Recording()]
    summary = preprocessing.preprocess(preprocessing.find_videos(raw), tmp_path / "pre", detectors, batch_size=8)
    assert summary.done == 4 and not summary.failures
    assert all(d.calls > 0 for d in detectors) and sum(d.calls for d in detectors) == 4 * 4  # 25 frames: 4 batches
    assert not any(d.overlapped for d in detectors)
    assert len(set.union(*(d.threads for d in detectors))) == 2
    assert all(len(list((tmp_path / "pre" / clip).glob("*.jpg"))) == 25
               for clip in ("speaker000/00000", "speaker000/00001", "speaker001/00000", "speaker001/00001"))


def test_s3fd_boxes_are_cropped_as_the_detector_gives_them(tmp_path):
    raw = tmp_path / "raw"
    (raw / "spk").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (9, 9), 3) for _ in range(6)]
    write_video(raw / "spk" / "clip.mp4", frames, audio=speech_like(0.3))
    decoded = list(read_frames(raw / "spk" / "clip.mp4"))
    # A seeded net biased towards "face" finds boxes anywhere, often outside the frame. How far
    # out depends on the exact pixels (OpenCV's blur, the codec), which change between library
    # versions: take the smallest bias whose boxes give at least one crop.
    for bias in (1.5, 2.0, 3.0, 4.0):
        net = seeded(S3FD(), seed=7)
        with torch.no_grad():
            for name in ("conv4_3_norm_mbox_conf", "conv5_3_norm_mbox_conf", "fc7_mbox_conf"):
                getattr(net, name).bias.copy_(torch.tensor([0.0, bias]))
        weights = save_released(net, tmp_path / "s3fd.pth", module_prefix=False, wrapped=False)
        boxes = S3FDDetector("cpu", weights, batch_size=4).detect(decoded)  # candidates depend on the batch, as in the reference
        # The first box, cut without padding; the far edges are not clipped, so a box beyond the
        # frame gives a smaller crop, or none (such frames are skipped like those without a face).
        expected = {}
        for k, box in enumerate(boxes):
            if box is not None:
                x1, y1, x2, y2 = to_int_box(box)
                if decoded[k][y1:y2, x1:x2].size:
                    expected[k] = decoded[k][y1:y2, x1:x2]
        if expected:
            break
    assert expected, "no bias made the seeded detector's boxes fall on the frames"
    assert run(raw, tmp_path / "pre", "--detector_weights", str(weights), "--device", "cpu", "--batch_size", "4") == 0
    crops = {int(p.stem): cv2.imread(str(p)) for p in (tmp_path / "pre" / "spk" / "clip").glob("*.jpg")}
    assert set(crops) == set(expected)
    for k, face in expected.items():
        assert crops[k].shape == face.shape and np.abs(crops[k].astype(float) - face).mean() < 8


def test_loading_s3fd_is_said_and_the_bar_counts_the_clips(raw, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(face_detection, "S3FDDetector", lambda *_: preprocessing.FixedBoxDetector(FACE_BOX))
    flags = ["--data_root", str(raw), "--preprocessed_root", str(tmp_path / "pre"), "--audio_workers", "2",
             "--device", "cpu", "--detector_checkpoint_path", str(tmp_path / "s3fd.pth")]
    assert cli.run(preprocess.main, flags) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"loading S3FD from {tmp_path / 's3fd.pth'} on cpu\n")
    assert "preprocessing: 100%" in err and " 4/4 " in err
    assert cli.run(preprocess.main, [*flags, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_bad_flags_get_one_line(tmp_path, capsys):
    assert run(tmp_path / "missing", tmp_path / "out") == 1
    assert "--data_root" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", tmp_path / "out") == 1
    assert "no <video>/<clip>.mp4 files" in capsys.readouterr().err


# --- failures: a full disk, a read-only folder, kill -9 ----------------------------------------

def box_flags(raw, out):
    return ["--data_root", raw, "--preprocessed_root", out, "--box", *BOX, "--audio_workers", "2", "--quiet"]


def complete(clip, frames=25):
    """A clip folder marked done holds every crop and its audio."""
    crops = sorted(int(p.stem) for p in clip.glob("*.jpg"))
    return crops == list(range(frames)) and (clip / "audio.wav").stat().st_size > 44


def test_a_full_disk_stops_with_one_line_marks_nothing_half_done_and_a_rerun_repairs(raw, tmp_path):
    reference = tmp_path / "reference"
    assert run(raw, reference, "--box", *BOX) == 0
    logs = tmp_path / "logs"
    logs.mkdir()
    steps = (FULL_DISK + ' && "$PY" "$ROOT/preprocess.py" "$@" 2>"$LOGS/first.err"; echo $? >"$LOGS/first.rc"; '
             'cp -a "$FOLDER/pre" "$LOGS/pre-full"; '  # as the full disk left it
             + MORE_ROOM + ' && "$PY" "$ROOT/preprocess.py" "$@" 2>"$LOGS/second.err"; echo $? >"$LOGS/second.rc"; '
             'cp -a "$FOLDER/pre" "$LOGS/pre-after-first"')
    disk = tmp_path / "disk"
    result = in_namespace(steps, disk, *box_flags(raw, disk / "pre"), size="300k", LOGS=logs)
    assert (logs / "first.rc").exists(), result.stderr[-2000:]
    assert (logs / "first.rc").read_text().strip() == "1"
    first = [line for line in (logs / "first.err").read_text().splitlines() if line.strip()]
    assert len(first) == 1 and first[0].startswith("error: no space left on the device of "), first
    full = logs / "pre-full"
    folders = sorted(full.glob("*/*"))
    assert folders and not all((f / DONE_MARKER).exists() for f in folders)  # the disk filled up mid-run
    for folder in folders:  # nothing marked done is incomplete
        assert not (folder / DONE_MARKER).exists() or complete(folder), folder
    failures = full / preprocessing.FAILURES_NAME
    assert not failures.exists() or "no face" not in failures.read_text()

    assert (logs / "second.rc").read_text().strip() == "0", (logs / "second.err").read_text()
    after = logs / "pre-after-first"
    assert tree(after) == tree(reference)  # the same files and bytes as an uninterrupted run
    assert temporaries(after) == []


def test_a_read_only_output_folder_is_one_line_before_any_video(raw, tmp_path):
    out = tmp_path / "pre"
    flags = [flag for flag in box_flags(raw, out) if flag != "--quiet"]
    result = in_namespace(READ_ONLY + ' && "$PY" "$ROOT/preprocess.py" "$@"', out, *flags)
    line = one_line_error(result)
    assert line == f"error: {out} is read-only (read-only file system)"
    assert "preprocessing" not in result.stderr  # no progress bar: no video was tried


def test_kill_9_leaves_no_worker_behind_and_a_rerun_equals_an_uninterrupted_run(raw, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "pre"
    assert run(raw, reference, "--box", *BOX) == 0

    def mid_clip():  # crops written, the clip not yet done (its audio workers are still starting)
        return any(any(f.glob("*.jpg")) and not (f / DONE_MARKER).exists() for f in out.glob("*/*"))

    children = kill_when(script("preprocess.py", *box_flags(raw, out)), mid_clip)
    assert children  # the audio workers were running
    assert wait_until_gone(children) == []  # and died with their parent
    assert run(raw, out, "--box", *BOX) == 0
    assert tree(out) == tree(reference)
    assert temporaries(out) == []


def test_an_injected_write_failure_is_fatal_not_a_failed_video(raw, tmp_path, monkeypatch):
    import errno
    written = []

    def failing_write(path, image):
        if len(written) == 30:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        original(path, image)

    original = preprocessing.write_jpeg
    monkeypatch.setattr(preprocessing, "write_jpeg", failing_write)
    out = tmp_path / "pre"
    with pytest.raises(OSError) as caught:
        preprocessing.preprocess(preprocessing.find_videos(raw), out, [preprocessing.FixedBoxDetector(FACE_BOX)], 8, 1)
    assert caught.value.errno == errno.ENOSPC
    for folder in out.glob("*/*"):
        assert not (folder / DONE_MARKER).exists() or complete(folder)
    assert not (out / preprocessing.FAILURES_NAME).exists()  # not listed as "no face found"


def test_hidden_files_are_not_videos(raw, tmp_path):
    (raw / "speaker000" / ".00000.mp4.ab12cd34.mp4").write_bytes(b"unfinished")
    (raw / ".trash").mkdir()
    (raw / ".trash" / "old.mp4").write_bytes(b"deleted")
    assert [p.name for p in preprocessing.find_videos(raw)] == ["00000.mp4", "00001.mp4"] * 2
