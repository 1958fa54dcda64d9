"""LSE-D / LSE-C: the SyncNet S, python_speech_features MFCCs, offsets, and the scoring script."""

import math
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest
import python_speech_features
import torch
from conftest import ROOT
from support.synthetic_weights import save_released, seeded

import audio
from evaluation.metrics.lse import (
    JpegRoundTrip,
    LSEScorer,
    mfcc,
    offset_distances,
    pcm16,
    sync_score,
)
from evaluation.metrics.syncnet import S, load_syncnet
from media.synthetic import face_frames, speech_like, textbook_bgr, write_video
from models import SyncNet_color
from models.checkpoint import CheckpointError
from system.reports import read_rows

SCRIPT = ROOT / "evaluation" / "scores_LSE" / "calculate_scores_LRS.py"


@pytest.fixture(scope="module")
def syncnet_file(tmp_path_factory):
    # syncnet_v2.model is a bare state dict in the legacy format.
    path = tmp_path_factory.mktemp("weights") / "syncnet_v2.model"
    return save_released(seeded(S(), 3), path, module_prefix=False, wrapped=False)


def test_s_loads_the_released_format_strictly(syncnet_file, tmp_path):
    # The layout itself is checked with the other networks' in test_models.py.
    model = load_syncnet(syncnet_file)
    assert torch.equal(model.state_dict()["netcnnlip.19.running_var"], torch.load(syncnet_file)["netcnnlip.19.running_var"])
    assert not model.training

    wrong = save_released(seeded(SyncNet_color()), tmp_path / "lipsync_expert.pth")
    with pytest.raises(CheckpointError, match="expert lip-sync SyncNet"):
        load_syncnet(wrong)
    partial = dict(S().state_dict())
    del partial["netfclip.3.bias"]
    torch.save(partial, tmp_path / "partial.model")
    with pytest.raises(CheckpointError, match="1 missing keys.*netfclip.3.bias"):
        load_syncnet(tmp_path / "partial.model")


@pytest.mark.parametrize("length", [300, 400, 401, 16000, 16321])
def test_mfcc_equals_python_speech_features(length):
    signal = np.round(np.random.default_rng(length).standard_normal(length) * 3000)
    np.testing.assert_array_equal(mfcc(signal), python_speech_features.mfcc(signal, 16000))
    np.testing.assert_array_equal(mfcc(np.zeros(length)), python_speech_features.mfcc(np.zeros(length), 16000))


def test_pcm16_matches_16_bit_samples():
    np.testing.assert_array_equal(pcm16(np.array([0, 0.5, -1, 1, 1 / 32768, -2])), [0, 16384, -32768, 32767, 1, -32768])


def _reference_lse(model, frames, samples, vshift=15, batch_size=20):
    """syncnet_python's evaluate(), written out plainly: all in memory, one window at a time."""
    images = [cv2.resize(frame, (224, 224)) for frame in frames]
    clip = torch.from_numpy(np.transpose(np.stack(images, axis=3)[None], (0, 3, 4, 1, 2)).astype(float)).float()
    cepstra = np.stack(list(zip(*python_speech_features.mfcc(samples, 16000))))
    cct = torch.from_numpy(cepstra[None, None].astype(float)).float()
    last = min(len(images), math.floor(len(samples) / 640)) - 5
    lip, aud = [], []
    with torch.no_grad():
        for i in range(0, last, batch_size):
            lip.append(model.forward_lip(torch.cat([clip[:, :, v:v + 5] for v in range(i, min(last, i + batch_size))])))
            aud.append(model.forward_aud(torch.cat([cct[:, :, :, v * 4:v * 4 + 20] for v in range(i, min(last, i + batch_size))])))
    lip, aud = torch.cat(lip).double().numpy(), torch.cat(aud).double().numpy()
    padded = np.pad(aud, ((vshift, vshift), (0, 0)))
    means = np.array([
        np.mean([np.linalg.norm(lip[i] - padded[i + k]) for i in range(len(lip))]) for k in range(2 * vshift + 1)
    ])
    return vshift - int(np.argmin(means)), float(np.median(means) - means.min()), float(means.min()), means


def test_lse_equals_a_plain_computation_of_the_reference(syncnet_file, tmp_path):
    wav = speech_like(0.9, 16000, seed=4)
    video = write_video(tmp_path / "v.mp4", face_frames(22, (96, 96), seed=2), audio=wav)
    scorer = LSEScorer(syncnet_file, batch_size=7)  # batches of 7 windows: streaming must not change anything
    score, source = scorer.score_video(video, jpeg_roundtrip=False)

    samples = pcm16(audio.load_wav(video, 16000))
    offset, confidence, distance, means = _reference_lse(load_syncnet(syncnet_file), textbook_bgr(video), samples)
    assert score.windows == 22 - 5 and source.frames == 22
    assert score.offset == offset
    np.testing.assert_allclose(score.distances, means, rtol=1e-4)
    assert score.min_distance == pytest.approx(distance, rel=1e-4)
    assert score.confidence == pytest.approx(confidence, rel=1e-3, abs=1e-3 * distance)


def test_offset_sign_at_the_feature_level():
    # Lip feature i equals audio feature i + 3: the sound comes 3 frames late -> offset -3.
    aud = torch.randn(40, 8)
    lip = aud[3:33]
    score = sync_score(offset_distances(lip, aud[:30], 15), 15)
    # Only the last 3 lip features meet zero padding instead of their audio.
    assert score.offset == -3
    assert score.min_distance == pytest.approx(float(lip[-3:].norm(dim=1).sum() / 30), rel=1e-4)
    assert score.confidence > 2


class _LoudnessAndBrightness(torch.nn.Module):
    """Stands in for S: lip feature = which of the 5 frames are bright, audio feature = which
    of the 5 frames' 40 ms are loud (from c0, the log energy)."""

    def forward_lip(self, frames):
        return (frames.mean(dim=(1, 3, 4)) > 128).float()

    def forward_aud(self, cepstra):
        return (cepstra[:, 0, 0].reshape(len(cepstra), 5, 4).mean(-1) > 19).float()


def _pattern_video(path, delay, fps=25, sample_rate=16000, seconds=3.0):
    """Frames bright when p[k] is 1 (k: the 25 fps frame shown), sound loud when p[k - delay] is 1."""
    pattern = np.random.default_rng(7).integers(0, 2, int(seconds * 25) + 40)
    frames = [np.full((64, 64, 3), 200 if pattern[int(i * 25 / fps)] else 40, np.uint8) for i in range(int(seconds * fps))]
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    block = (t * 25).astype(int) - delay
    loud = np.where(block >= 0, pattern[np.clip(block, 0, None)], 0)
    wav = np.where(loud == 1, 0.5, 0.001) * np.sin(2 * np.pi * 440 * t)
    return write_video(path, frames, rate=Fraction(fps), audio=wav, sample_rate=sample_rate)


@pytest.mark.parametrize("delay, fps, sample_rate, jpeg", [
    (3, 25, 16000, False), (-2, 25, 16000, True), (4, 30, 44100, False), (-1, 30000 / 1001, 48000, True),
])
def test_av_offset_is_minus_the_sound_delay_at_any_frame_and_sample_rate(syncnet_file, tmp_path, delay, fps, sample_rate, jpeg):
    video = _pattern_video(tmp_path / "p.mp4", delay, Fraction(fps).limit_denominator(1001), sample_rate)
    scorer = LSEScorer(syncnet_file)
    scorer.model = _LoudnessAndBrightness()
    score, source = scorer.score_video(video, jpeg_roundtrip=jpeg)
    assert score.offset == -delay
    assert score.confidence > score.min_distance  # the minimum is well below the median
    notes = "; ".join(source.notes().values())
    assert ("resampled to 25 fps" in notes) == (fps != 25)
    assert (f"{sample_rate} Hz audio resampled to 16000 Hz" in notes) == (sample_rate != 16000)


def test_lengths_less_than_a_frame_apart_are_no_note():
    from evaluation.metrics.lse import VideoInput

    assert VideoInput(25.0, 16000, frames=16, samples=16 * 640 + 639).notes() == {}
    assert VideoInput(25.0, 16000, frames=16, samples=16 * 640 - 639).notes() == {}
    assert list(VideoInput(25.0, 16000, frames=16, samples=17 * 640).notes().values()) == \
        ["audio 0.680 s and video 0.640 s differ"]


def test_jpeg_round_trip_is_lossy_like_ffmpegs_default_jpeg_frames():
    frames = face_frames(3, (160, 160), seed=1)
    roundtrip = JpegRoundTrip()
    for frame in frames:
        back = roundtrip(frame)
        assert back.shape == frame.shape and back.dtype == np.uint8
        assert 22 < cv2.PSNR(frame, back) < 45  # close, but not the decoded frame
        assert np.any(back != frame)


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_script_prints_the_reference_lines_and_writes_per_video_scores(syncnet_file, tmp_path):
    data = tmp_path / "results dir"
    data.mkdir()
    for i in range(2):
        write_video(data / f"{i}.mp4", face_frames(14, (96, 96), seed=i), audio=speech_like(0.6, 16000, seed=i))
    (data / "broken.mp4").write_bytes(b"<html>not a video</html>")
    (data / ".2.mp4.k3j5h7g9.mp4").write_bytes(b"the unfinished temporary of a video still being written")
    scores = tmp_path / "scores.csv"
    done = _run("--data_root", data, "--syncnet_checkpoint_path", syncnet_file, "--scores", scores, "--quiet")
    assert done.returncode == 1, done.stderr  # a video could not be scored: the others are, and the run says so
    rows = {row["video"]: row for row in read_rows(scores)}
    assert set(rows) == {"0.mp4", "1.mp4", "broken.mp4"} and "cannot read" in rows["broken.mp4"]["error"]
    # the hidden temporary is not a video
    assert f"Scored 2 of 3 videos; 1 failed (named above); per-video scores in {scores}" in done.stdout
    lines = done.stdout.strip().splitlines()
    confidence = np.mean([float(rows[v]["lse_c"]) for v in ("0.mp4", "1.mp4")])
    distance = np.mean([float(rows[v]["lse_d"]) for v in ("0.mp4", "1.mp4")])
    assert lines[-2].startswith("Average Confidence: ") and float(lines[-2].split(": ")[1]) == pytest.approx(confidence)
    assert lines[-1].startswith("Average Minimum Distance: ") and float(lines[-1].split(": ")[1]) == pytest.approx(distance)
    assert [line for line in done.stderr.splitlines() if "broken.mp4" in line] == \
        [f"broken.mp4: skipped: {rows['broken.mp4']['error']}"]  # one line

    (data / "broken.mp4").unlink()  # every video scored: exit status 0
    json_scores = tmp_path / "scores.json"
    assert _run("--data_root", data, "--syncnet_checkpoint_path", syncnet_file, "--scores", json_scores, "--quiet",
                "--no_jpeg_roundtrip").returncode == 0
    assert {row["video"] for row in read_rows(json_scores)} == {"0.mp4", "1.mp4"}

    # Without --scores the scores go under results/, named after the folder, not into the working directory.
    # The reference's --initial_model still names the weights.
    (tmp_path / "work").mkdir()
    assert _run("--data_root", data, "--initial_model", syncnet_file, "--quiet", cwd=tmp_path / "work").returncode == 0
    assert [str(p.relative_to(tmp_path / "work")) for p in (tmp_path / "work").rglob("*")] == \
        ["results", "results/results dir_lse_scores.csv"]
    assert read_rows(tmp_path / "work" / "results" / "results dir_lse_scores.csv") == read_rows(scores)[:2]


def test_notes_come_once_for_the_run_and_each_video_only_with_verbose(syncnet_file, tmp_path, capsys):
    """Audio a few frames longer than the video, in three videos: one note for the run, with
    the count; each video's with --verbose. Lengths alike are no note."""
    from evaluation.scores_LSE import calculate_scores_LRS

    data = tmp_path / "generated"
    data.mkdir()
    for i in range(3):
        write_video(data / f"{i}.mp4", face_frames(12, (96, 96), seed=i), audio=speech_like(0.6, 16000, seed=i))
    # 0.64 s: 16 frames, and 10 whole AAC frames of 1024 samples, so that every PyAV decodes it
    # whole (PyAV 18 decodes 0.6 s of AAC as 0.64 s, the padded last frame; PyAV 19 as 0.6 s)
    write_video(data / "3.mp4", face_frames(16, (96, 96), seed=3), audio=speech_like(0.64, 16000, seed=3))
    argv = ["--data_root", str(data), "--syncnet_checkpoint_path", str(syncnet_file), "--scores",
            str(tmp_path / "s.csv"), "--no_jpeg_roundtrip"]
    assert calculate_scores_LRS.main(argv) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "differ" in line] == [
        "note: audio and video lengths differ by a frame or more (only the shorter length is scored): 3 of 4 videos "
        f"(notes column of {tmp_path / 's.csv'}; --verbose names them as they are scored)"]
    notes = [row["notes"] for row in read_rows(tmp_path / "s.csv")]
    assert all(note.startswith("audio 0.6") and note.endswith("and video 0.480 s differ") for note in notes[:3])
    assert notes[3] == ""
    # the model's loading is said, and the bar counts the videos against their total
    assert f"loading SyncNet from {syncnet_file} on cpu" in err and "LSE: 100%" in err and "4/4" in err

    assert calculate_scores_LRS.main([*argv, "--verbose"]) == 0
    err = capsys.readouterr().err
    assert sum(f"{i}.mp4: audio 0.6" in err for i in range(3)) == 3
    assert err.count("note: audio and video lengths differ") == 1

    assert calculate_scores_LRS.main([*argv, "--quiet"]) == 0
    assert "note: audio and video lengths differ" in capsys.readouterr().err  # no bar, no loading line; the note stays


@pytest.mark.parametrize("case", ["no model", "html model", "empty folder"])
def test_script_errors_are_one_line(syncnet_file, tmp_path, case):
    data = tmp_path / "d"
    data.mkdir()
    model = syncnet_file
    if case != "empty folder":
        write_video(data / "0.mp4", face_frames(8, (96, 96)), audio=speech_like(0.4))
    if case == "no model":
        model = tmp_path / "missing.model"
    elif case == "html model":
        model = tmp_path / "syncnet_v2.model"
        model.write_text("<!DOCTYPE html><html>sign in</html>")
    done = _run("--data_root", data, "--syncnet_checkpoint_path", model, "--quiet", "--scores", tmp_path / "s.csv")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_a_shard_says_how_to_merge_and_a_run_with_no_scores_is_an_error(syncnet_file, tmp_path, capsys):
    from evaluation.scores_LSE import calculate_scores_LRS
    from system.cli import run

    data = tmp_path / "d"
    data.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (data / name).write_bytes(b"<html>not a video</html>")
    scores = tmp_path / "s.csv"
    argv = ["--data_root", str(data), "--syncnet_checkpoint_path", str(syncnet_file), "--scores", str(scores), "--quiet"]
    # A shard whose videos fail says so: its exit status is 1, its rows go to the merge.
    assert run(calculate_scores_LRS.main, [*argv, "--shard", "1/2"]) == 1
    out, err = capsys.readouterr()
    shard_file = tmp_path / "s.shard-1-of-2.csv"
    assert out == (f"shard 1 of 2 (0-based): scored 0 of 1 videos; 1 failed (named above) into {shard_file}; "
                   f"when every shard is done: python merge_shards.py {scores}\n")
    assert err.startswith("b.mp4: skipped: cannot read") and len(err.splitlines()) == 1
    assert [row["video"] for row in read_rows(shard_file)] == ["b.mp4"]

    assert run(calculate_scores_LRS.main, argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1] == f"error: none of the 2 videos could be scored (see {scores})"
    assert [row["video"] for row in read_rows(scores)] == ["a.mp4", "b.mp4"]


def test_the_reference_command_line_parses():
    from evaluation.scores_LSE import calculate_scores_LRS
    from evaluation.scores_LSE.command_line import syncnet_weights

    args = calculate_scores_LRS.build_parser().parse_args(
        ["--initial_model", "data/syncnet_v2.model", "--batch_size", "20", "--vshift", "15", "--data_root", "r",
         "--tmp_dir", "data/work/pytmp", "--reference", "demo"])
    assert syncnet_weights(args) == "data/syncnet_v2.model" and (args.batch_size, args.vshift) == (20, 15)
    assert syncnet_weights(calculate_scores_LRS.build_parser().parse_args(["--data_root", "r"])) == \
        "checkpoints/syncnet_v2.model"
    shown = calculate_scores_LRS.build_parser().format_help()
    assert "--syncnet_checkpoint_path" in shown and "--initial_model" not in shown
