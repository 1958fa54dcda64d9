"""Frames without a face, fast detection, the face cache and feathered blending."""

import cv2
import numpy as np
import pytest
from inference_assets import (  # noqa: F401 - pytest fixtures
    BOX,
    CONSTANT_BGR,
    assets,
    chunk_count,
    cli,
    decoded,
    detector,
    outside,
    synced,
)

from lipsync.box_planning import NoFaceError
from media.synthetic import face_frames, write_video


@pytest.mark.parametrize("mode", ["interpolate", "skip"])
def test_frames_without_a_face_are_filled_or_passed_through(assets, detector, mode):
    frames = decoded(assets / "gaps.mp4")
    got, summary = synced(assets, face="gaps.mp4", seconds=1.4, on_no_face=mode)
    assert len(got) == chunk_count(1.4) == 32
    painted = [bool((frame == CONSTANT_BGR).all(axis=2).any()) for frame in got]
    for i in range(12, 26):  # 14 frames: longer than --max_gap (0.5 s), so left alone in both modes
        assert np.array_equal(got[i], frames[i])
    assert painted[5] == (mode == "interpolate")
    assert all(painted[i] for i in [*range(5), *range(6, 12), *range(26, 32)])
    assert (summary.faces_detected, summary.faces_filled, summary.passed_through) == \
        ((15, 1, 14) if mode == "interpolate" else (15, 0, 15))


def test_on_no_face_error_names_the_frame(assets, detector, capsys):
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", assets / "gaps.mp4", "--audio",
                          assets / "speech1.4.wav", "--on_no_face", "error", "--outfile", assets / "x.mp4"], capsys)
    assert code == 1 and captured.err.strip().splitlines() == [
        "error: face not detected in frame 5 (at 0.20 s); use --on_no_face interpolate or skip to carry on without it"]
    assert not (assets / "x.mp4").exists()


def test_a_video_without_any_face_is_an_error(assets, detector, tmp_path):
    write_video(tmp_path / "empty_room.mp4", face_frames(8, without_face=set(range(8))))
    with pytest.raises(NoFaceError, match="no face detected in any frame"):
        synced(assets, face=tmp_path / "empty_room.mp4")


@pytest.mark.parametrize("mode", ["interpolate", "error"])
def test_a_still_image_without_a_face_says_image(assets, detector, tmp_path, capsys, mode):
    empty = tmp_path / "empty_room.png"
    cv2.imwrite(str(empty), face_frames(1, without_face={0})[0])
    video = write_video(tmp_path / "empty_room.mp4", face_frames(8, without_face=set(range(8))))
    common = ["--checkpoint_path", assets / "constant.pth", "--audio", assets / "speech0.6.wav", "--on_no_face", mode,
              "--outfile", tmp_path / "x.mp4"]
    for face, said in [(empty, f"no face detected in the image {empty}"),
                       (video, f"no face detected in the first frame of the video {video} (--static)")]:
        code, captured = cli([*common, "--face", face, *["--static"] * (face == video)], capsys)
        assert (code, captured.err) == (1, f"error: {said}\n")
    code, captured = cli([*common[:-4], "--face", video, "--outfile", tmp_path / "x.mp4"], capsys)
    assert (code, captured.err) == (1, f"error: no face detected in any frame of the video {video}\n")
    assert not (tmp_path / "x.mp4").exists()


def pasted_box(frame):
    ys, xs = np.nonzero((frame == CONSTANT_BGR).all(axis=2))
    return np.array([ys.min(), ys.max(), xs.min(), xs.max()])


def test_fast_detection_options(assets, detector):
    full, _ = synced(assets, face="face30.mp4", seconds=1.0)
    calls = len(detector.calls)
    strided, summary = synced(assets, face="face30.mp4", seconds=1.0, det_stride=3)
    assert sum(shape[0] for shape in detector.calls[calls:]) == 8  # frames 0, 3, ..., 21 of 22
    assert (summary.faces_detected, summary.faces_filled) == (8, 14)
    calls = len(detector.calls)
    small, _ = synced(assets, face="face30.mp4", seconds=1.0, det_max_side=80)
    assert {shape[1:3] for shape in detector.calls[calls:]} == {(64, 80)}
    for a, b, c in zip(full, strided, small):
        assert np.abs(pasted_box(a) - pasted_box(b)).max() <= 6
        assert np.abs(pasted_box(a) - pasted_box(c)).max() <= 4


def test_face_cache_skips_detection_when_the_same_video_is_dubbed_again(assets, detector, tmp_path):
    _, summary = synced(assets, face="face30.mp4", face_cache=tmp_path / "cache")
    assert summary.cache == "miss (saved)" and sum(s[0] for s in detector.calls) == 30  # the whole video
    detector.calls = []
    again, summary = synced(assets, face="face30.mp4", seconds=1.0, face_cache=tmp_path / "cache",
                            detector_path=tmp_path / "absent.pth")
    assert summary.cache == "hit" and detector.calls == []
    fresh, _ = synced(assets, face="face30.mp4", seconds=1.0)
    assert len(again) == len(fresh) == 22 and all(np.array_equal(a, b) for a, b in zip(again, fresh))
    _, summary = synced(assets, face="face30.mp4", face_cache=tmp_path / "cache", det_max_side=100)
    assert summary.cache == "miss (saved)" and len(list((tmp_path / "cache").iterdir())) == 2


def test_feather_blend_keeps_the_box_edges_and_replaces_the_mouth(assets):
    got, _ = synced(assets, box=BOX, blend="feather")
    original = decoded(assets / "face12.mp4")[0]
    y1, y2, x1, x2 = BOX
    assert np.array_equal(outside(got[0]), outside(original))
    mouth = got[0][y1 + (y2 - y1) * 3 // 4, (x1 + x2) // 2].astype(int)
    assert np.abs(mouth - CONSTANT_BGR).max() <= 1
    for edge in (np.s_[y1:y2, x1], np.s_[y1:y2, x2 - 1], np.s_[y1, x1:x2], np.s_[y2 - 1, x1:x2]):
        assert np.abs(got[0][edge].astype(int) - original[edge]).max() <= 1
