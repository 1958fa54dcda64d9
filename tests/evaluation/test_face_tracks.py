"""Face tracks for scoring real videos: scene cuts, tracking, syncnet_python's crops, the script."""

import cv2
import numpy as np
from support.bright_box_detector import BrightBoxDetector
from support.synthetic_weights import save_released, seeded

import face_detection.loading
from evaluation.metrics.face_tracks import (
    SceneCuts,
    Track,
    TrackCropper,
    build_tracks,
    detect_faces,
)
from evaluation.metrics.syncnet import S
from evaluation.scores_LSE import calculate_scores_real_videos
from media.synthetic import face_frames, speech_like, write_video
from system.reports import read_rows


def box_at(x, y, size=120):
    return np.array([[x, y, x + size, y + size]], float)


def test_tracks_follow_one_face_through_misses_and_split_at_cuts_and_jumps():
    none = np.zeros((0, 4))
    faces = [box_at(10 + i, 20) for i in range(60)]
    for i in (5, 6, 7):
        faces[i] = none  # missed detections are interpolated
    for i in range(45, 60):
        faces[i] = box_at(400, 300)  # the face jumps: a new track
    tracks = build_tracks(faces, scene_starts=[30], min_track=10, min_face_size=100)
    assert [(t.first, t.last) for t in tracks] == [(0, 29), (30, 44), (45, 59)]
    np.testing.assert_allclose(tracks[0].boxes[6], [16, 20, 136, 140])  # interpolated between frames 4 and 8
    # too short (<= min_track detections) or too small faces are dropped
    assert [(t.first, t.last) for t in build_tracks(faces, [30], min_track=15, min_face_size=100)] == [(0, 29)]
    assert build_tracks(faces, [30], min_track=10, min_face_size=130) == []


def test_scene_cuts_at_a_change_of_picture():
    red, blue = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 2], blue[..., 0] = 200, 200
    frames = [red] * 5 + [blue] * 2 + [red] + [blue] * 5 + [red]
    cuts = SceneCuts(min_scene=3)
    # not at 7 or 8: a scene lasts more than min_scene frames
    assert [i for i, f in enumerate(frames) if cuts.is_cut(f)] == [5, 13]


def test_crops_are_syncnet_pythons():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    track = Track(np.arange(20), np.tile([100.0, 100.0, 200.0, 200.0], (20, 1)))
    crop = TrackCropper(track).crop(10, frame)
    # half size 50, crop scale 0.4: rows 100 .. 240 (down past the chin), columns 80 .. 220
    np.testing.assert_array_equal(crop, cv2.resize(frame[100:240, 80:220], (224, 224)))
    # near the edge the frame is padded with grey 110
    edge = Track(np.arange(20), np.tile([0.0, 0.0, 100.0, 100.0], (20, 1)))
    assert (TrackCropper(edge).crop(3, frame)[:5, :5] == 110).all()


def test_script_scores_each_track(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)
    (tmp_path / "s3fd.pth").write_bytes(b"stand-in")
    model = save_released(seeded(S(), 3), tmp_path / "syncnet_v2.model", module_prefix=False, wrapped=False)
    data = tmp_path / "videos"
    data.mkdir()
    write_video(data / "talk.mp4", face_frames(30, (200, 160)), audio=speech_like(1.2))
    write_video(data / "noface.mp4", face_frames(30, (200, 160), without_face=set(range(30))), audio=speech_like(1.2))
    scores = tmp_path / "scores.json"
    argv = ["--data_root", str(data), "--syncnet_checkpoint_path", str(model),
            "--detector_checkpoint_path", str(tmp_path / "s3fd.pth"), "--face_det_batch_size", "7",
            "--min_track", "10", "--min_face_size", "20", "--scores", str(scores), "--quiet"]
    assert calculate_scores_real_videos.main(argv) == 1  # a video without a face track failed
    out, err = capsys.readouterr()
    tracks = [row for row in read_rows(scores) if not row["error"]]
    assert [(row["video"], row["track"], row["start_s"], row["end_s"]) for row in tracks] == [("talk.mp4", 0, 0.0, 1.2)]
    assert tracks[0]["lse_d"] > 0
    assert err.splitlines() == ["noface.mp4: no face track of 10 frames or more"]
    lines = out.strip().splitlines()
    assert lines[-3] == f"Scored 1 face track in 1 of 2 videos; 1 failed (named above); per-track scores in {scores}"
    assert lines[-2] == f"Average Confidence: {tracks[0]['lse_c']}"
    assert lines[-1] == f"Average Minimum Distance: {tracks[0]['lse_d']}"

    (data / "noface.mp4").unlink()  # the reference's spellings of the weights still work
    old = [*argv[:argv.index("--min_track")], "--min_track", "10", "--min_face_size", "20", "--scores", str(scores)]
    old[old.index("--syncnet_checkpoint_path")] = "--initial_model"
    old[old.index("--detector_checkpoint_path")] = "--detector_path"
    assert calculate_scores_real_videos.main(old) == 0
    err = capsys.readouterr().err
    assert f"loading SyncNet from {model} on cpu" in err and f"loading S3FD from {tmp_path / 's3fd.pth'} on cpu" in err


def test_garbage_detections_are_bounded_to_the_frame():
    class Garbage:
        def detect(self, frames, select=None):
            return [np.array([[-5e9, 10, 4e12, 70, 0.99], [np.nan, 0, 10, 10, 0.99], [300, 300, 900, 900, 0.95],
                              [10, 10, 20, 20, 0.5]], np.float32) for _ in frames]

    frames = [np.zeros((400, 640, 3), np.uint8)] * 2
    faces = detect_faces(Garbage(), frames)
    # scaled back by 4, clipped to 640 x 400; NaN, outside (area-less) and low-score boxes dropped
    np.testing.assert_allclose(faces[0], [[0, 40, 640, 280]])
    track = Track(np.arange(20), np.tile(faces[0][0], (20, 1)))
    assert TrackCropper(track).crop(3, frames[0]).shape == (224, 224, 3)
