"""Test-set generation never scores one checkpoint on another's videos, and one failing video
is one row of failures.csv, never the end of the batch."""

import json

import av
import numpy as np
import pytest
from support.bright_box_detector import BrightBoxDetector
from support.synthetic_weights import save_released, seeded

import face_detection.loading
from evaluation import gen_videos_from_filelist, real_videos_inference
from media import containers
from media.synthetic import face_frames, speech_like, write_video
from models import Wav2Lip
from models.checkpoint import file_digest
from system.errors import UserError
from system.reports import read_rows


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)
    (tmp_path / "weights.pth").write_bytes(b"stand-in S3FD")
    save_released(seeded(Wav2Lip(), 0), tmp_path / "a.pth")
    save_released(seeded(Wav2Lip(), 1), tmp_path / "b.pth")
    root = tmp_path / "root"
    root.mkdir()
    write_video(root / "one.mp4", face_frames(12, seed=1), audio=speech_like(0.4, seed=1))
    write_video(root / "two.mp4", face_frames(12, seed=2), audio=speech_like(0.4, seed=2))
    (tmp_path / "list.txt").write_text("one two\ntwo one\n")
    return tmp_path


def generate(data, results, checkpoint, *flags):
    return gen_videos_from_filelist.main([
        "--filelist", str(data / "list.txt"), "--data_root", str(data / "root"), "--results_dir", str(data / results),
        "--checkpoint_path", str(data / checkpoint), "--detector_path", str(data / "weights.pth"), "--quiet", *flags])


def frames(path):
    return list(containers.read_frames(path))


def recorded(path):
    with av.open(str(path)) as container:
        return json.loads(container.metadata["generation"])


def test_videos_made_with_another_checkpoint_or_settings_are_remade_not_kept(data, capsys):
    assert generate(data, "results", "a.pth") == 0
    assert "2 generated, 0 already there, 0 failed" in capsys.readouterr().out
    assert recorded(data / "results" / "0.mp4")["checkpoint_sha256"] == file_digest(data / "a.pth")

    assert generate(data, "results", "b.pth") == 0  # the same folder, another checkpoint
    assert "2 generated (2 of them remade: made with another checkpoint or other settings), 0 already there, " \
           "0 failed" in capsys.readouterr().out
    assert generate(data, "fresh", "b.pth") == 0
    for name in ("0.mp4", "1.mp4"):
        assert recorded(data / "results" / name)["checkpoint_sha256"] == file_digest(data / "b.pth")
        assert all(np.array_equal(x, y) for x, y in
                   zip(frames(data / "results" / name), frames(data / "fresh" / name), strict=True))
    capsys.readouterr()

    assert generate(data, "results", "b.pth") == 0  # the same checkpoint and settings: kept
    assert "0 generated, 2 already there, 0 failed" in capsys.readouterr().out
    assert generate(data, "results", "b.pth", "--pads", "0", "5", "0", "0") == 0  # other settings
    assert "2 generated (2 of them remade" in capsys.readouterr().out
    assert recorded(data / "results" / "1.mp4")["settings"]["pads"] == [0, 5, 0, 0]


def test_a_video_that_cannot_say_what_made_it_is_remade(data, capsys):
    assert generate(data, "results", "a.pth", "--unmarked") == 0  # no metadata at all
    (data / "results" / "1.mp4").write_bytes(b"\0" * 1000)  # damaged
    capsys.readouterr()
    assert generate(data, "results", "a.pth") == 0
    assert "2 generated (2 of them remade" in capsys.readouterr().out
    assert recorded(data / "results" / "1.mp4")["checkpoint_sha256"] == file_digest(data / "a.pth")


def test_a_remake_that_fails_leaves_no_video_made_otherwise(data, capsys):
    write_video(data / "root" / "gaps.mp4", face_frames(12, seed=3, without_face={4}), audio=speech_like(0.4, seed=3))
    (data / "list.txt").write_text("one gaps\n")
    assert generate(data, "results", "a.pth", "--on_no_face", "interpolate") == 0
    assert generate(data, "results", "a.pth", "--on_no_face", "error") == 1  # the reference's setting fails it
    assert "0 generated, 0 already there, 1 failed" in capsys.readouterr().out
    (row,) = read_rows(data / "results" / "failures.csv")
    assert row["error"].startswith("face not detected in frame 4")
    assert row["error"].endswith("; the 0.mp4 made with another checkpoint or other settings was removed")
    assert sorted(p.name for p in (data / "results").iterdir()) == ["failures.csv"]


def test_a_missing_checkpoint_is_one_line_before_any_video_is_touched(data, capsys):
    assert generate(data, "results", "a.pth") == 0
    before = {p.name: p.read_bytes() for p in (data / "results").iterdir()}
    with pytest.raises(UserError, match="checkpoint not found: .*typo.pth"):
        generate(data, "results", "typo.pth")
    assert {p.name: p.read_bytes() for p in (data / "results").iterdir()} == before


class FailingOnWideFrames(BrightBoxDetector):
    """A detector that fails on one video (frames 200 wide) and finds absurd boxes in another (180 wide)."""

    def detect(self, frames, select=None):
        if frames.shape[2] == 200:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if frames.shape[2] == 180:
            return [np.array([1e30, 1e30, np.inf, np.inf, 0.99], np.float32) for _ in frames]
        return super().detect(frames, select)


def test_one_failing_real_video_is_a_row_of_failures_csv_not_the_end_of_the_batch(data, monkeypatch, capsys):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", FailingOnWideFrames)
    root = data / "real"
    root.mkdir()
    write_video(root / "a_fails.mp4", face_frames(12, (200, 160), seed=1), audio=speech_like(0.4))
    write_video(root / "b_absurd.mp4", face_frames(12, (180, 144), seed=2), audio=speech_like(0.4))
    write_video(root / "c_works.mp4", face_frames(12, (160, 128), seed=3), audio=speech_like(0.4))
    argv = ["--mode", "dubbed", "--data_root", str(root), "--results_dir", str(data / "out"), "--checkpoint_path",
            str(data / "a.pth"), "--detector_path", str(data / "weights.pth"), "--face_res", "30",
            "--min_frame_res", "40", "--max_frame_res", "200", "--quiet"]
    assert real_videos_inference.main(argv) == 1  # a pair failed
    assert "1 generated, 0 already there, 2 failed (see failures.csv)" in capsys.readouterr().out
    rows = read_rows(data / "out" / "failures.csv")
    assert [row["index"] for row in rows] == ["0", "1"]
    assert rows[0]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert rows[1]["error"] == f"no face in the first frame of {root / 'b_absurd.mp4'}"
    assert sorted(p.name for p in (data / "out").iterdir()) == ["2.mp4", "failures.csv"]
