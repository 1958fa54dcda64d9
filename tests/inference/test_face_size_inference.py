"""Inference with a larger generator: 192-pixel crops in, 192-pixel faces pasted, no 96-pixel step
anywhere, with every blend, precision and backend, in the file pipeline and the stream."""

import numpy as np
import pytest
import torch
from inference_assets import FrameList, decoded
from support.synthetic_weights import save_released, seeded

import export
import lipsync.generator
from lipsync import Options, lip_sync
from lipsync.compose import feather_mask
from lipsync.stream import LipSyncStream
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import SyncNet_color, Wav2Lip
from models.checkpoint import save_checkpoint

SIZE = 192
BOX = (16, 16 + SIZE, 32, 32 + SIZE)  # top bottom left right: a face box of exactly the generator's size


def board(size=SIZE):
    """A one-pixel checkerboard in three colours: no image of fewer pixels can hold it."""
    rows, cols = np.indices((size, size))
    return np.where(((rows + cols) % 2 == 0)[..., None], (250, 10, 120), (5, 240, 60)).astype(np.uint8)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    d = tmp_path_factory.mktemp("face192")
    save_checkpoint(d / "gen192.pth", seeded(Wav2Lip(SIZE), 0, gain=0.8), global_step=1)
    save_checkpoint(d / "sync192.pth", seeded(SyncNet_color(SIZE), 1))
    save_released(seeded(SyncNet_color(), 1), d / "sync96.pth")
    assert export.main([str(d / "gen192.pth")]) == 0  # gen192.onnx beside it
    write_media(d / "speech.wav", speech_like(0.6)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face.mp4", face_frames(12, size=(256, 224)))
    return d


class Checkerboard(lipsync.generator.TorchGenerator):
    """The 192-pixel generator, loaded as inference loads it, whose faces are ``board()``: what it
    was given is kept in ``seen``."""

    seen = []

    def generate(self, faces, mels):
        Checkerboard.seen.append(faces.copy())
        return np.broadcast_to(board(), faces.shape).copy()


def run(large, sink=None, **options):
    sink = FrameList() if sink is None else sink
    summary = lip_sync(Options(str(large / "gen192.pth"), str(large / "face.mp4"), str(large / "speech.wav"),
                               outfile=str(large / "out.mp4"), box=BOX, progress=False, **options), sink=sink)
    return sink, summary


def outside(frame):
    y1, y2, x1, x2 = BOX
    rest = frame.copy()
    rest[y1:y2, x1:x2] = 0
    return rest


@pytest.mark.parametrize("blend", ["paste", "feather"])
def test_a_192_generator_takes_192_crops_and_its_faces_are_pasted_pixel_for_pixel(large, monkeypatch, blend):
    monkeypatch.setattr(lipsync.generator, "TorchGenerator", Checkerboard)
    Checkerboard.seen = []
    got, summary = run(large, blend=blend)
    frames = decoded(large / "face.mp4")
    y1, y2, x1, x2 = BOX
    crops = np.concatenate(Checkerboard.seen)  # batches run side by side: in the order they were done
    assert crops.shape == (12, SIZE, SIZE, 3) and summary.frames == 12
    boxed = [original[y1:y2, x1:x2] for original in frames]
    for crop in crops:  # the box's own pixels: nothing scaled down
        assert sum(np.array_equal(crop, region) for region in boxed) == 1
    for frame, original in zip(got, frames):
        assert np.array_equal(outside(frame), outside(original))  # the untouched-pixel guarantee
        region = original[y1:y2, x1:x2].astype(np.float32)
        if blend == "paste":
            assert np.array_equal(frame[y1:y2, x1:x2], board())  # every one of the board's pixels survives
        else:  # the feather's weights drawn at 192: 1 over the mouth, 0 at the box's edges
            alpha = feather_mask(SIZE)[..., None]
            assert np.array_equal(frame[y1:y2, x1:x2], np.rint(region + alpha * (board() - region)).astype(np.uint8))
            assert np.array_equal(frame[y2 - 30, x1 + 60:x1 + 130], board()[SIZE - 30, 60:130])


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"backend": "onnxruntime"}, {"blend": "feather"}],
                         ids=["bf16", "onnxruntime", "feather"])
def test_the_192_generator_runs_in_every_precision_and_backend_and_touches_only_its_box(large, options):
    reference, _ = run(large)
    got, _ = run(large, **options)
    frames = decoded(large / "face.mp4")
    y1, y2, x1, x2 = BOX
    for frame, expected, original in zip(got, reference, frames):
        assert np.array_equal(outside(frame), outside(original))
        difference = np.abs(frame[y1:y2, x1:x2].astype(int) - expected[y1:y2, x1:x2])
        if "blend" not in options:  # the same faces, to the precision's rounding
            assert np.mean(difference) < (3 if options.get("precision") == "bf16" else 0.05)
    assert np.abs(got[5][y1:y2, x1:x2].astype(int) - frames[5][y1:y2, x1:x2]).mean() > 5  # a generated face


@pytest.mark.parametrize("expert", ["sync192.pth", "sync96.pth"])
def test_the_sync_score_takes_an_expert_of_either_size(large, expert, capsys):
    """An expert of the generator's size scores its faces; the released 96-pixel one scores them
    resized, and says so."""
    scores = run(large, syncnet_checkpoint_path=str(large / expert))[1].sync
    note = "is for 96-pixel faces, the generator for 192: the sync scores see the faces resized to 96"
    assert (note in capsys.readouterr().err) == (expert == "sync96.pth")
    assert len(scores["chunks"]) == len(scores["result"]) == 12 - 4
    assert all(-1 <= value <= 1 for value in scores["input"] + scores["result"])


@pytest.mark.parametrize("height", [SIZE, SIZE - 42])
def test_a_face_smaller_than_the_generator_s_size_gets_one_note(large, monkeypatch, capsys, height):
    """A 150-pixel face under a 192 generator is upscaled: one note names it (not one per frame);
    a face of the generator's size gets none."""
    monkeypatch.setattr(lipsync.generator, "TorchGenerator", Checkerboard)
    y1, _, x1, x2 = BOX
    summary = lip_sync(Options(str(large / "gen192.pth"), str(large / "face.mp4"), str(large / "speech.wav"),
                               outfile=str(large / "out.mp4"), box=(y1, y1 + height, x1, x2), progress=False),
                       sink=FrameList())
    notes = [line for line in capsys.readouterr().err.splitlines() if "smaller than the generator's" in line]
    assert summary.frames == 12
    if height == SIZE:
        assert notes == []
    else:
        assert notes == ["note: the face in frame 0 is 192x150 pixels, smaller than the generator's 192: it is "
                         "upscaled to 192 and the mouth can hold no more detail than the video has (a 96-pixel "
                         "generator costs less)"]


def test_the_stream_pastes_192_faces_too(large, monkeypatch):
    monkeypatch.setattr(lipsync.generator, "TorchGenerator", Checkerboard)
    Checkerboard.seen = []
    stream = LipSyncStream(large / "gen192.pth", large / "face.mp4", box=BOX, progress=False)
    samples = speech_like(0.6).astype(np.float32)
    for start in range(0, len(samples), 320):
        stream.push_audio(samples[start:start + 320], 16000)
    stream.close()
    got = [frame for frame in stream if frame.speaking]
    frames = decoded(large / "face.mp4")
    y1, y2, x1, x2 = BOX
    assert got and all(crops.shape[1:] == (SIZE, SIZE, 3) for crops in Checkerboard.seen)
    for frame in got:
        assert np.array_equal(frame.image[y1:y2, x1:x2], board())
        assert np.array_equal(outside(frame.image), outside(frames[frame.index % len(frames)]))


def test_generated_faces_depend_on_the_192_pixels(large):
    """The network sees the crop at 192: a change a 96-pixel crop cannot hold (a one-pixel
    checkerboard's phase) changes its output."""
    model = lipsync.generator.load_generator(str(large / "gen192.pth"), torch.device("cpu"))
    mels = np.random.default_rng(0).standard_normal((1, 80, 16), np.float32)
    shifted = np.roll(board(), 1, axis=1)
    a, b = (lipsync.generator.generate(model, face[None], mels, torch.device("cpu"), "fp32") for face in (board(), shifted))
    assert np.abs(a.astype(int) - b).mean() > 1
