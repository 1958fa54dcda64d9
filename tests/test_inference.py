import gc
import json
import re
import subprocess
import sys
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch
from confined import FULL_DISK, READ_ONLY, in_namespace, one_line_error
from conftest import ROOT
from reference_inference import load_generator, reference_frames
from synthetic_media import (
    BrightBoxDetector,
    bright_box,
    face_frames,
    natural_frames,
    read_planes,
    speech_like,
    write_media,
    write_tagged_video,
    write_video,
)
from synthetic_weights import save_released, seeded

import audio
import face_detection.loading
import inference
from lipsync import Options, generator, lip_sync, pipeline
from lipsync.audio_chunks import mel_chunk_starts
from lipsync.box_planning import NoFaceError
from media import containers
from models import SyncNet_color, Wav2Lip
from system.cli import run
from system.errors import UserError

CONSTANT_BGR = (50, 100, 200)
BOX = (20, 90, 30, 100)  # top bottom left right


def logit(p):
    return float(np.log(p / (1 - p)))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    constant = seeded(Wav2Lip(), 0)
    with torch.no_grad():  # output = sigmoid(bias): x 255 truncates to CONSTANT_BGR
        constant.output_block[1].weight.zero_()
        constant.output_block[1].bias.copy_(torch.tensor([logit((v + 0.5) / 255) for v in CONSTANT_BGR]))
    save_released(constant, d / "constant.pth", module_prefix=False)
    audio_only = seeded(Wav2Lip(), 3)
    with torch.no_grad():  # the face encoder sees nothing: the output depends on the audio alone
        audio_only.face_encoder_blocks[0][0].conv_block[0].weight.zero_()
    save_released(audio_only, d / "audio_only.pth")
    save_released(seeded(SyncNet_color(), 1), d / "sync.pth")
    for seconds in (0.6, 1.0, 1.4):
        write_media(d / f"speech{seconds}.wav", speech_like(seconds)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face12.mp4", face_frames(12))
    write_video(d / "face30.mp4", face_frames(30))
    write_video(d / "gaps.mp4", face_frames(30, without_face={5, *range(12, 26)}))
    return d


class FrameList(list):
    def write(self, frame):
        self.append(frame.copy())


@pytest.fixture
def detector(monkeypatch):
    BrightBoxDetector.calls = []
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)
    return BrightBoxDetector


def synced(assets, checkpoint="constant.pth", face="face12.mp4", seconds=0.6, **options):
    sink = FrameList()
    summary = lip_sync(Options(str(assets / checkpoint), str(assets / face), str(assets / f"speech{seconds}.wav"),
                               progress=False, **options), sink=sink)
    return sink, summary


def decoded(path):
    return list(containers.read_frames(path))


def chunk_count(seconds, fps=25.0):
    return len(mel_chunk_starts(1 + int(seconds * 16000) // 200, fps))


def outside(frame, box=BOX):
    y1, y2, x1, x2 = box
    rest = frame.copy()
    rest[y1:y2, x1:x2] = 0
    return rest


def assert_close(got, expected, max_share=2e-3):
    """Equal up to float rounding: no pixel off by more than 1, and very few off at all."""
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() <= max_share


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


def probe(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return {"frames": frames, "rate": video.average_rate, "size": (video.width, video.height),
                "audio": len(container.streams.audio), "codec": video.codec_context.name,
                "pix_fmt": video.codec_context.pix_fmt,
                "audio_seconds": float(container.streams.audio[0].duration * container.streams.audio[0].time_base)
                if container.streams.audio else 0.0}


def test_every_flag_reaches_the_options_by_name():
    import dataclasses

    parser = inference.build_parser()
    fields = {field.name for field in dataclasses.fields(Options)}
    flags = {action.dest for action in parser._actions} - {"help", "quiet", "verbose"}
    # Set by the evaluation scripts and dub.py, not by flags:
    assert flags <= fields and fields - flags == {"progress", "resize_to", "tool", "synthetic_speech", "subtitles",
                                                  "generation_record"}
    args = parser.parse_args(["--checkpoint_path", "g.pth", "--face", "f.mp4", "--audio", "a.wav", "--pads", "1", "2",
                              "3", "4", "--box", "5", "6", "7", "8", "--det_stride", "3", "--device", "cpu", "--quiet"])
    options = Options.from_args(args)
    assert options.pads == (1, 2, 3, 4) and options.box == (5, 6, 7, 8) and options.crop == (0, -1, 0, -1)
    assert options.det_stride == 3 and options.device == "cpu" and options.progress is False
    assert options == Options("g.pth", "f.mp4", "a.wav", pads=(1, 2, 3, 4), box=(5, 6, 7, 8), det_stride=3,
                              device="cpu", progress=False)


def test_command_line_writes_h264_aac_with_every_chunk_and_paths_can_hold_anything(assets, tmp_path):
    odd = tmp_path / "we ird 'q\" ;$(touch pwned)"
    odd.mkdir()
    (odd / "face.mp4").write_bytes((assets / "face12.mp4").read_bytes())
    (odd / "speech.wav").write_bytes((assets / "speech1.0.wav").read_bytes())
    work = tmp_path / "cwd"
    work.mkdir()
    outfile = odd / "out dir" / "result $(x).mp4"
    result = subprocess.run(
        [sys.executable, str(ROOT / "inference.py"), "--checkpoint_path", str(assets / "constant.pth"),
         "--face", str(odd / "face.mp4"), "--audio", str(odd / "speech.wav"), "--outfile", str(outfile),
         "--box", *map(str, BOX), "--quiet"],
        cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stdout and "22 frames" in result.stdout
    info = probe(outfile)
    assert info["frames"] == 22 and info["rate"] == 25 and info["audio"] == 1
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert abs(info["audio_seconds"] - 1.0) < 0.1  # AAC frames are 1024 samples: 64 ms at 16 kHz
    assert list(work.iterdir()) == [] and not (tmp_path / "pwned").exists()
    assert sorted(p.name for p in outfile.parent.iterdir()) == [outfile.name]


def cli(argv, capsys):
    code = run(inference.main, [*map(str, argv), "--quiet"])
    return code, capsys.readouterr()


def test_29_97_fps_stays_29_97_and_odd_sizes_and_rotation_are_handled(assets, tmp_path, capsys):
    rate = Fraction(30000, 1001)
    phone = write_video(tmp_path / "phone.mp4", face_frames(12), rate=rate, rotation=-90)  # shown rotated
    upright = decoded(phone)
    assert upright[0].shape == (160, 128, 3)
    out = tmp_path / "out.mp4"
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", phone, "--audio",
                          assets / "speech1.0.wav", "--outfile", out, "--box", *BOX, "--crop", 0, 155, 0, 127], capsys)
    assert code == 0, captured.err
    info = probe(out)
    assert info["rate"] == rate and info["size"] == (128, 156)  # 127 x 155 padded to even
    assert info["frames"] == len(mel_chunk_starts(81, float(rate))) == 26
    written = decoded(out)[5][:155, :127]
    assert np.abs(outside(written).astype(int) - outside(upright[5][:155, :127])).mean() < 3


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


def test_sync_similarity_of_input_and_result(assets, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, captured = cli(["--checkpoint_path", assets / "constant.pth", "--face", assets / "face12.mp4", "--audio",
                          assets / "speech0.6.wav", "--outfile", out, "--box", *BOX,
                          "--syncnet_checkpoint_path", assets / "sync.pth"], capsys)
    assert code == 0, captured.err
    assert "Voice/face sync of the input video" in captured.out and "DescribeResult(nobs=8, minmax=(" in captured.out
    scores = json.loads((tmp_path / "out.sync.json").read_text())
    assert scores["chunks"] == list(range(8)) and len(scores["input"]) == len(scores["result"]) == 8

    # chunk 2 against input frames 2..6, computed directly
    y1, y2, x1, x2 = BOX
    faces = [cv2.resize(f[y1:y2, x1:x2], (96, 96))[48:] for f in decoded(assets / "face12.mp4")[2:7]]
    mel = audio.melspectrogram(audio.load_wav(assets / "speech0.6.wav", 16000))
    start = mel_chunk_starts(mel.shape[1], 25.0)[2]
    net = SyncNet_color()
    net.load_state_dict({k[7:]: v for k, v in torch.load(assets / "sync.pth", weights_only=True)["state_dict"].items()})
    with torch.no_grad():
        a, v = net.eval()(torch.tensor(mel[None, None, :, start:start + 16], dtype=torch.float32),
                          torch.tensor(np.concatenate(faces, axis=2).transpose(2, 0, 1)[None] / 255, dtype=torch.float32))
    assert abs(float((a * v).sum()) - scores["input"][2]) < 1e-4
    constant_face = np.full((48, 96, 15), 0, np.uint8) + np.tile(np.array(CONSTANT_BGR, np.uint8), 5)
    with torch.no_grad():
        _, v = net(torch.tensor(mel[None, None, :, start:start + 16], dtype=torch.float32),
                   torch.tensor(constant_face.transpose(2, 0, 1)[None] / 255, dtype=torch.float32))
    assert abs(float((a * v).sum()) - scores["result"][2]) < 1e-4


def test_cpu_precision_options(assets):
    got, _ = synced(assets, box=BOX, precision="bf16")
    y1, y2, x1, x2 = BOX
    assert np.abs(got[3][y1:y2, x1:x2].astype(int) - CONSTANT_BGR).max() <= 2  # bf16 rounding of the bias
    assert np.array_equal(outside(got[3]), outside(decoded(assets / "face12.mp4")[3]))


def test_fp16_the_path_a_gpu_takes_runs_on_the_cpu(assets):
    """--precision fp16 (auto's choice on CUDA) under CPU autocast: the same frames as fp32,
    up to half-precision rounding of a random network (which amplifies it in a few pixels)."""
    exact, _ = synced(assets, "gen.pth", box=BOX, precision="fp32")
    half, _ = synced(assets, "gen.pth", box=BOX, precision="fp16")
    y1, y2, x1, x2 = BOX
    for a, b in zip(exact, half, strict=True):
        difference = np.abs(a.astype(int) - b.astype(int))
        assert difference[y1:y2, x1:x2].mean() < 0.2 and (difference[y1:y2, x1:x2] > 2).mean() < 0.02
        assert np.array_equal(outside(a), outside(b))
    assert any(not np.array_equal(a, b) for a, b in zip(exact, half))  # it really ran in fp16


def test_two_batches_generate_at_once_on_the_cpu_and_frames_stay_in_order(assets, monkeypatch):
    """With a fixed box on a CPU of several cores two batches run side by side, on half the
    threads each (5 -> 3 + 2); a batch that comes back late is still written in its place."""
    expected, _ = synced(assets, "audio_only.pth", "face12.mp4", 1.0, box=BOX)
    calls, generate = [], generator.TorchGenerator.generate

    def first_batch_last(self, faces, mels):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        if len(calls) == 1:
            time.sleep(0.5)  # the first batch (of one frame) ends after the next one
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", first_batch_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(5)
    try:
        got, summary = synced(assets, "audio_only.pth", "face12.mp4", 1.0, box=BOX)
        assert torch.get_num_threads() == 5  # given back after the run
    finally:
        torch.set_num_threads(threads)
    assert len({name for name, _ in calls}) == 2 and {count for _, count in calls} == {3, 2}
    assert summary.timings["busy"]["generator"] <= 1.0  # shared by the two
    assert len(got) == len(expected) == 22
    for a, b in zip(got, expected):
        assert_close(a, b)  # consecutive frames differ by more than this (see the pairing test)


def test_a_generator_failing_mid_run_stops_every_stage_and_leaves_no_file(assets, tmp_path, monkeypatch):
    calls, generate = [], generator.TorchGenerator.generate

    def fails_at_the_fourth_batch(self, faces, mels):
        calls.append(len(faces))
        if len(calls) == 4:
            raise RuntimeError("out of memory (simulated)")
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", fails_at_the_fourth_batch)

    def running():  # tqdm's monitor thread comes and goes on its own
        return {thread for thread in threading.enumerate() if type(thread).__name__ != "TMonitor"}

    before = running()
    options = Options(str(assets / "gen.pth"), str(assets / "face30.mp4"), str(assets / "speech1.4.wav"),
                      outfile=str(tmp_path / "out.mp4"), box=BOX, progress=False)
    with pytest.raises(RuntimeError, match="simulated"):
        lip_sync(options)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary
    assert running() == before  # every stage and worker thread ended
    assert len(calls) <= 6  # the batches queued behind the failure were dropped


def test_no_garbage_collection_while_the_generator_loads(assets, monkeypatch):
    """Loading makes many objects and frees none: collections there only cost time. What it
    made is frozen once, so later collections skip it; only once, so that no garbage of a
    caller running lip_sync once per video is kept."""
    collections, at_load = [], []
    load = generator.TorchGenerator.__init__

    def loaded(self, *args):
        load(self, *args)
        at_load.append(len(collections))

    monkeypatch.setattr(generator.TorchGenerator, "__init__", loaded)
    gc.callbacks.append(lambda phase, info: collections.append(phase))
    try:
        options = Options(str(assets / "gen.pth"), "f.mp4", "a.wav", box=BOX)
        assert pipeline.generator_for(options).batch_size == 8
        frozen = gc.get_freeze_count()
        collections.clear()
        pipeline.generator_for(options)
        assert at_load == [0, 0] and gc.isenabled()  # none from the call's start to the model loaded
        assert frozen > 0 and gc.get_freeze_count() == frozen
        gc.disable()
        pipeline.generator_for(options)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
        gc.callbacks.pop()


def test_x264_beside_a_generator_on_the_cpu_gets_one_thread_per_four_cores(assets, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 8)
    outfile = tmp_path / "out.mp4"
    lip_sync(Options(str(assets / "gen.pth"), str(assets / "face30.mp4"), str(assets / "speech1.4.wav"),
                     outfile=str(outfile), box=BOX, progress=False))
    settings = re.search(rb"options: ([ -~]+)", outfile.read_bytes()).group(1).split()  # x264's own record
    assert b"threads=2" in settings
    assert pipeline.encoder_threads(torch.device("cuda")) == 0  # beside a GPU, as many as x264 likes
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    assert pipeline.encoder_threads(torch.device("cpu")) == pipeline.encoder_threads("cpu") == 1


def test_while_s3fd_runs_beside_it_the_generator_runs_one_batch_on_every_thread(assets, detector, monkeypatch):
    calls, generate = [], generator.TorchGenerator.generate

    def recorded(self, faces, mels):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return generate(self, faces, mels)

    monkeypatch.setattr(generator.TorchGenerator, "generate", recorded)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        synced(assets)
    finally:
        torch.set_num_threads(threads)
    assert len({name for name, _ in calls}) == 1 and {count for _, count in calls} == {2}


def test_auto_precision_notes_what_native_bf16_would_give(monkeypatch, capsys):
    monkeypatch.setattr(generator, "native_bf16", lambda: True)
    generator.suggest_bf16(torch.device("cpu"), "auto")
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "--precision bf16" in note and "about 2-3x faster" in note
    for device, precision in (("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "auto")):
        generator.suggest_bf16(torch.device(device), precision)
    monkeypatch.setattr(generator, "native_bf16", lambda: False)
    generator.suggest_bf16(torch.device("cpu"), "auto")
    assert capsys.readouterr().err == ""


def put(path, data):
    path.write_bytes(data)
    return path


ERROR_CASES = {
    "missing face": (lambda a, t: ["--face", t / "nope.mp4"], "video file not found"),
    "empty face": (lambda a, t: ["--face", put(t / "e.mp4", b"")], "is empty"),
    "junk face": (lambda a, t: ["--face", put(t / "j.mp4", b"\x00junk" * 99)], "cannot read"),
    "truncated face": (lambda a, t: ["--face", put(t / "cut.mp4", (a / "face30.mp4").read_bytes()[:900])], "cannot"),
    "face without video": (lambda a, t: ["--face", a / "speech0.6.wav"], "has no video stream"),
    "audio without audio": (lambda a, t: ["--audio", a / "face12.mp4"], "has no audio stream"),
    "missing audio": (lambda a, t: ["--audio", t / "nope.wav"], "audio file not found"),
    "short audio": (lambda a, t: ["--audio", write_media(t / "s.wav", speech_like(0.1)[None], 16000,
                                                       audio_codec="pcm_s16le")], "audio is too short"),
    "html checkpoint": (lambda a, t: ["--checkpoint_path", put(t / "w.pth", b"<!DOCTYPE html><html>Sign in</html>")], "is an HTML page"),
    "wrong checkpoint": (lambda a, t: ["--checkpoint_path", a / "sync.pth"], "expert lip-sync SyncNet"),
    "missing s3fd": (lambda a, t: ["--box", -1, -1, -1, -1, "--detector_path", t / "s3fd.pth"],
                     "S3FD face-detector weights not found"),
    "bad box": (lambda a, t: ["--box", 0, 500, 0, 50], "--box 0 500 0 50 does not fit in the 160x128 frame"),
    "bad crop": (lambda a, t: ["--crop", 50, 20, 0, -1], "--crop 50 20 0 -1 does not fit"),
    "output over input": (lambda a, t: ["--outfile", a / "face12.mp4"], "would be overwritten"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_input_gives_one_line_and_no_output(assets, tmp_path, capsys, case):
    make, message = ERROR_CASES[case]
    outfile = tmp_path / "out" / "result.mp4"
    argv = ["--checkpoint_path", assets / "constant.pth", "--face", assets / "face12.mp4",
            "--audio", assets / "speech0.6.wav", "--outfile", outfile, "--box", *BOX]
    argv += make(assets, tmp_path)
    before = (assets / "face12.mp4").read_bytes()
    code, captured = cli(argv, capsys)
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert not outfile.exists() and (assets / "face12.mp4").read_bytes() == before


# --- failures: a read-only folder, a full disk, audio of any rate ------------------------------

def inference_args(assets, outfile, *extra):
    return ["--checkpoint_path", assets / "constant.pth", "--face", assets / "face30.mp4",
            "--audio", assets / "speech1.4.wav", "--outfile", outfile, "--box", *BOX, "--quiet", *extra]


def test_a_read_only_output_folder_is_one_line_before_decoding(assets, tmp_path):
    folder = tmp_path / "results"
    outfile = folder / "sub" / "out.mp4"
    result = in_namespace(READ_ONLY + ' && "$PY" "$ROOT/inference.py" "$@"', folder,
                          *inference_args(assets, outfile, "--audio", tmp_path / "missing.wav"))
    # The folder is refused before the inputs are read (the missing audio is not reached).
    assert one_line_error(result) == f"error: {folder} is read-only (read-only file system)"


def test_a_read_only_face_cache_is_one_line_before_detecting(assets, tmp_path):
    cache = tmp_path / "cache"
    args = inference_args(assets, tmp_path / "out.mp4", "--face_cache", cache, "--detector_path", tmp_path / "none.pth")
    args[args.index("--box"):args.index("--box") + 5] = []  # detection, whose weights are missing: not reached
    result = in_namespace(READ_ONLY + ' && "$PY" "$ROOT/inference.py" "$@"', cache, *args)
    assert one_line_error(result) == f"error: {cache} is read-only (read-only file system)"


def test_a_full_disk_is_one_line_and_leaves_no_file(assets, tmp_path):
    folder = tmp_path / "results"
    long_audio = write_media(tmp_path / "long.wav", speech_like(8.0)[None], 16000, audio_codec="pcm_s16le")
    steps = FULL_DISK + ' && "$PY" "$ROOT/inference.py" "$@"; code=$?; ls -A "$FOLDER" > "$LISTING"; exit $code'
    result = in_namespace(steps, folder, *inference_args(assets, folder / "out.mp4", "--audio", long_audio,
                                                         "--crf", "0"), size="64k", LISTING=tmp_path / "listing")
    assert one_line_error(result) == f"error: no space left on the device of {folder / 'out.mp4'}"
    assert (tmp_path / "listing").read_text() == ""  # no output, no temporary


def test_audio_of_any_rate_is_encoded(assets, tmp_path, capsys):
    t = np.arange(192000) / 192000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t))[None]
    wav = write_media(tmp_path / "hifi.wav", tone, 192000, audio_codec="pcm_s24le")
    outfile = tmp_path / "out.mp4"
    code, captured = cli(inference_args(assets, outfile, "--audio", wav), capsys)
    assert code == 0, captured.err
    with av.open(str(outfile)) as container:
        assert container.streams.audio[0].rate == 48000
    heard = audio.load_wav(outfile, 16000)
    spectrum = np.abs(np.fft.rfft(heard))
    assert abs(spectrum.argmax() * 16000 / len(heard) - 440) < 2  # the same tone, resampled for AAC
