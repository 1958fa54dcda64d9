"""Inference's frames: equal to the reference pipeline's, each paired with its mel chunk, pasted only in the box,
looped or cut to the audio, a still image as one static frame."""

import cv2
import numpy as np
import pytest
import torch
from inference_assets import (  # noqa: F401 - pytest fixtures
    BOX,
    CONSTANT_BGR,
    assert_close,
    assets,
    chunk_count,
    decoded,
    detector,
    outside,
    synced,
)
from support.bright_box_detector import bright_box
from support.reference_inference import load_generator, reference_frames

import audio
from lipsync import Options, lip_sync
from lipsync.audio_chunks import mel_chunk_starts
from media import containers
from media.synthetic import face_frames, natural_frames, read_planes, write_tagged_video
from system.errors import UserError


@pytest.mark.parametrize("video, seconds", [("face30.mp4", 0.6), ("face12.mp4", 1.0)], ids=["cut", "looped"])
def test_frames_equal_the_reference_pipeline(assets, detector, video, seconds):
    frames = decoded(assets / video)
    detections = [bright_box(f) for f in frames]
    expected = reference_frames(assets / "gen.pth", frames, assets / f"speech{seconds}.wav", 25.0,
                                [[int(v) for v in box] for box in detections])
    got, summary = synced(assets, "gen.pth", video, seconds, wav2lip_batch_size=8)
    assert len(got) == len(expected) == chunk_count(seconds) == summary.frames
    for g, e in zip(got, expected):
        assert_close(g, e)
    assert summary.faces_detected == min(len(frames), len(got)) and summary.passed_through == 0


def test_frame_i_is_paired_with_mel_chunk_i(assets):
    got, _ = synced(assets, "audio_only.pth", "face12.mp4", 1.0, box=BOX)
    mel = audio.melspectrogram(audio.load_wav(assets / "speech1.0.wav", 16000))
    starts = mel_chunk_starts(mel.shape[1], 25.0)
    chunks = torch.tensor(np.stack([mel[:, s:s + 16] for s in starts]), dtype=torch.float32)[:, None]
    with torch.no_grad():
        predictions = load_generator(assets / "audio_only.pth")(chunks, torch.rand(len(starts), 6, 96, 96))
    predictions = (predictions.numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    y1, y2, x1, x2 = BOX
    expected = [cv2.resize(p, (x2 - x1, y2 - y1)) for p in predictions]
    assert len(got) == len(expected) == 22
    for frame, face in zip(got, expected):
        assert_close(frame[y1:y2, x1:x2], face)
    # the audio changes from chunk to chunk, so a shifted pairing could not pass
    assert min(np.abs(a.astype(int) - b).mean() for a, b in zip(expected, expected[1:])) > 1


def test_a_fixed_box_is_pasted_exactly_and_nothing_else_changes(assets):
    got, summary = synced(assets, box=BOX)
    frames = decoded(assets / "face12.mp4")
    y1, y2, x1, x2 = BOX
    for frame, original in zip(got, frames):
        assert (frame[y1:y2, x1:x2] == CONSTANT_BGR).all()
        assert np.array_equal(outside(frame), outside(original))
    assert summary.frames == 12


@pytest.mark.parametrize("kind, tags, box", [("yuv420p", (1, 1, 1, 1), BOX), ("yuvj420p", (5, 2, 5, 6), (21, 89, 31, 99)),
                                             ("yuv420p", (2, 0, 2, 2), (21, 90, 30, 99))],
                         ids=["bt709", "full-range-odd-box", "untagged"])
def test_pixels_outside_the_box_keep_their_yuv_numbers_and_tags(assets, tmp_path, kind, tags, box):
    """At --crf 0 every Y, U and V sample outside the box's chroma blocks is the input's."""
    matrix, full = ("bt709", tags[1] == 2) if tags[0] == 1 else ("bt601", tags[1] == 2)
    video = write_tagged_video(tmp_path / "in.mp4", natural_frames(12, size=(128, 96)), kind, matrix, full, tags)
    lip_sync(Options(str(assets / "constant.pth"), str(video), str(assets / "speech0.6.wav"), str(tmp_path / "out.mp4"),
                     box=box, crf=0, progress=False))
    (before, before_tags), (after, after_tags) = read_planes(video), read_planes(tmp_path / "out.mp4")
    assert after_tags == before_tags and len(after) == len(before) == 12
    y1, y2, x1, x2 = box
    touched = np.zeros(before[0][0].shape, bool)
    touched[y1 - y1 % 2:y2 + y2 % 2, x1 - x1 % 2:x2 + x2 % 2] = True
    for (y, u, v), (y0, u0, v0), frame in zip(after, before, containers.read_frames(tmp_path / "out.mp4")):
        assert np.array_equal(y[~touched], y0[~touched])
        assert np.array_equal(u[~touched[::2, ::2]], u0[~touched[::2, ::2]])
        assert np.array_equal(v[~touched[::2, ::2]], v0[~touched[::2, ::2]])
        assert np.abs(frame[y1 + 1:y2 - 1, x1 + 1:x2 - 1].astype(int) - CONSTANT_BGR).max() <= 1


@pytest.mark.parametrize("video, seconds, count", [("face12.mp4", 1.0, 22), ("face30.mp4", 0.6, 12)])
def test_video_loops_when_the_audio_is_longer_and_is_cut_when_shorter(assets, video, seconds, count):
    got, _ = synced(assets, face=video, seconds=seconds, box=BOX)
    frames = decoded(assets / video)
    assert len(got) == count == chunk_count(seconds)
    for i, frame in enumerate(got):
        assert np.array_equal(outside(frame), outside(frames[i % len(frames)]))


@pytest.mark.parametrize("name", ["still.png", "STILL.JPG", "still_without_extension"])
def test_a_still_image_is_one_static_frame(assets, tmp_path, name):
    image = face_frames(1)[0]
    _, encoded = cv2.imencode(".png", image)
    (tmp_path / name).write_bytes(encoded.tobytes())
    image = containers.read_image(tmp_path / name)  # as decoded (JPEG is lossy)
    got, _ = synced(assets, face=tmp_path / name, box=BOX)
    assert len(got) == 12
    assert all(np.array_equal(outside(frame), outside(image)) for frame in got)
    got, _ = synced(assets, face=tmp_path / name, box=BOX, fps=10)
    assert len(got) == chunk_count(0.6, fps=10) == 6
    with pytest.raises(UserError, match="--crop 0 -1 0 500 does not fit in the 160x128 frame"):
        synced(assets, face=tmp_path / name, box=BOX, crop=(0, -1, 0, 500))


def test_a_box_outside_the_frame_says_which_frame_it_is_in():
    # 160x128 -> resized 80x64 -> rotated 64x80 -> rows 0..40 kept: 64x40, too low for rows 0..50.
    options = Options("g.pth", "f.mp4", "a.wav", resize_factor=2, rotate=True, crop=(0, 40, 0, -1), box=(0, 50, 0, 10))
    with pytest.raises(UserError, match=r"^--box 0 50 0 10 does not fit in the 64x40 frame after --resize_factor 2, "
                                        r"--rotate, --crop 0 40 0 -1 \(top bottom left right"):
        options.frame_size(160, 128)
    assert Options("g.pth", "f.mp4", "a.wav", resize_factor=2, rotate=True, box=(0, 50, 0, 10)).frame_size(160, 128) \
        == (64, 80)


def test_static_video_uses_its_first_frame(assets, detector):
    got, _ = synced(assets, face="face12.mp4", seconds=1.0, static=True)
    first = decoded(assets / "face12.mp4")[0]
    assert len(got) == 22 and len(detector.calls) == 1 and detector.calls[0][0] == 1
    assert all(np.array_equal(frame, got[0]) for frame in got) and not np.array_equal(got[0], first)


def test_resize_rotate_and_crop_prepare_each_frame(assets):
    got, _ = synced(assets, box=(0, 10, 0, 10), resize_factor=2, rotate=True, crop=(4, -1, 0, 50))
    frame = decoded(assets / "face12.mp4")[3]
    expected = cv2.rotate(cv2.resize(frame, (80, 64)), cv2.ROTATE_90_CLOCKWISE)[4:, :50]
    assert got[3].shape == (76, 50, 3)
    assert np.array_equal(outside(got[3], (0, 10, 0, 10)), outside(expected, (0, 10, 0, 10)))
