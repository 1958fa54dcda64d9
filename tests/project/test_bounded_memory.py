"""Inference's memory is bounded by its settings, not by the audio's length or the frames'
size; audio samples the AAC encoder would refuse are caught before the work.

Memory is each run's peak resident set, measured in a child process (its VmHWM: ru_maxrss
would count the parent's peak too, which exec records), and compared with the same run on a
small input: the margins are generous, the defects they catch were hundreds of MB."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT
from scipy.io import wavfile
from support.synthetic_weights import save_released, seeded

import audio
from lipsync import Options, lip_sync, pipeline
from lipsync.audio_chunks import Speech, mel_chunk_starts
from media import containers
from media.synthetic import face_frames, silent_flac, speech_like, write_video
from models import Wav2Lip
from system.errors import UserError

MB = 1 << 20
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak memory read from /proc")

# Runs lip_sync into a sink that only counts frames (and stops the run after "stop_after" of
# them); prints the count and the peak resident MB.
CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from lipsync import Options, lip_sync, pipeline
spec = json.loads(sys.argv[2])
pipeline.FRAME_BUFFER_BYTES = spec.pop("budget", pipeline.FRAME_BUFFER_BYTES)
stop_after = spec.pop("stop_after", None)
class Enough(Exception):
    pass
class Counter:
    frames = 0
    def write(self, frame):
        self.frames += 1
        if self.frames == stop_after:
            raise Enough
sink = Counter()
try:
    lip_sync(Options(**spec, progress=False), sink=sink)
except Enough:
    pass
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(sink.frames, peak / 1024)
"""


def peak_of_run(tmp_path, runs=3, **spec):
    """(frames written, peak resident MB) of lip_sync run in a fresh process: the least peak of
    ``runs`` runs, as one run's peak varies by up to ~50 MB (how far the reading threads have
    got ahead when the run ends), which would hide or fake a defect of that size."""
    results = set()
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), json.dumps(spec)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        frames, peak = done.stdout.split()
        results.add((int(frames), float(peak)))
    assert len({frames for frames, _ in results}) == 1, results
    return min(results, key=lambda result: result[1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "gen.pth"
    save_released(seeded(Wav2Lip(), 0), path)
    return str(path)


def still(path, width, height):
    image = cv2.resize(face_frames(1)[0], (width, height))
    cv2.imwrite(str(path), image)
    return str(path)


def box_in(width, height):
    """A face box (top, bottom, left, right) in the middle of a frame of that size."""
    return height // 4, height * 3 // 4, width // 4, width * 3 // 4


@needs_proc
def test_memory_does_not_grow_with_the_audio_length(tmp_path, checkpoint):
    """Inference no longer computes the whole mel spectrogram up front (10 minutes of audio
    took 230 MB more than 10 seconds): the audio is checked in one pass, a frame of samples at
    a time, and its mel computed in pieces as the frames reach it (the next test)."""
    face = still(tmp_path / "face.png", 160, 128)
    peaks = {}
    for seconds in (10, 600):
        speech = silent_flac(tmp_path / f"{seconds}.flac", seconds)
        frames, peaks[seconds] = peak_of_run(tmp_path, checkpoint_path=checkpoint, face=face, audio=str(speech),
                                             box=box_in(160, 128), stop_after=40)
        assert frames == 40
    assert peaks[600] - peaks[10] < 60, peaks


# The speech's mel chunks read from start to end, as the pipeline reads them; prints the peak MB.
SPEECH = """
import sys
sys.path[:0] = [sys.argv[1]]
from lipsync.audio_chunks import Speech
speech = Speech(sys.argv[2])
count = sum(1 for _ in speech.chunks(speech.chunk_starts(25.0)))
with open("/proc/self/status") as status:
    print(count, next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024)
"""


@needs_proc
def test_the_mel_of_long_audio_is_read_in_bounded_memory(tmp_path):
    """Each output frame's mel chunk, computed a piece (12.5 s) at a time: 10 minutes of audio
    take what 10 seconds take, give or take the list of chunk starts."""
    peaks = {}
    for seconds in (10, 600):
        speech = silent_flac(tmp_path / f"{seconds}.flac", seconds)
        done = subprocess.run([sys.executable, "-c", SPEECH, str(ROOT), str(speech)], capture_output=True, text=True,
                              check=True)
        count, peaks[seconds] = done.stdout.split()
        assert int(count) == len(mel_chunk_starts(1 + seconds * 16000 // 200, 25.0))
    assert float(peaks[600]) - float(peaks[10]) < 40, peaks


@needs_proc
def test_a_big_still_is_held_once_not_once_per_frame(tmp_path, checkpoint):
    """A still is one frame shown again and again: the batches in flight share it (each
    output frame is copied only when pasted into), so a 2400x1800 still costs a few copies of
    itself, not a queue full of them."""
    speech = tmp_path / "speech.wav"
    wavfile.write(speech, 16000, speech_like(3.0))
    peaks = {}
    for width, height in ((240, 180), (2400, 1800)):
        face = still(tmp_path / f"{width}.png", width, height)
        frames, peaks[width] = peak_of_run(tmp_path, checkpoint_path=checkpoint, face=face, audio=str(speech),
                                           box=box_in(width, height))
        assert frames == len(mel_chunk_starts(1 + 48000 // 200, 25.0))
    frame_mb = 2400 * 1800 * 3 / MB  # 12 MB
    assert peaks[2400] - peaks[240] < 8 * frame_mb, peaks


@needs_proc
def test_big_video_frames_stay_within_the_frame_budget(tmp_path, checkpoint):
    """The budget counts bytes: where a queue of batches of 1440p frames would pass it, the
    batches get smaller (here the budget is cut to 64 MB, five 11 MB frames)."""
    speech = tmp_path / "speech.wav"
    wavfile.write(speech, 16000, speech_like(2.4))
    peaks, budget = {}, 64 * MB
    for width, height in ((256, 144), (2560, 1440)):
        frames = [cv2.resize(frame, (width, height)) for frame in face_frames(60)]
        video = write_video(tmp_path / f"{width}.mp4", frames)
        count, peaks[width] = peak_of_run(tmp_path, checkpoint_path=checkpoint, face=str(video), audio=str(speech),
                                          box=box_in(width, height), budget=budget)
        assert count == len(mel_chunk_starts(1 + 38400 // 200, 25.0))
    frame_mb = 2560 * 1440 * 3 / MB
    # the budget, a frame over it (batches of one frame), and frames being decoded, pasted, converted
    assert peaks[2560] - peaks[256] < budget / MB + 8 * frame_mb, peaks


@pytest.mark.parametrize("frame_size, generator_batch", [((3840, 2160), 128), ((6000, 4000), 8), ((1280, 720), 8),
                                                         ((1920, 1080), 128), ((64, 48), 128)])
def test_batches_shrink_for_big_frames_not_the_budget(frame_size, generator_batch):
    width, height = frame_size
    frame_bytes = width * height * 3 // 2  # YUV 4:2:0
    batch, depth = pipeline.batch_plan(frame_bytes, generator_batch)
    held = pipeline.batches_in_flight(depth) * batch * frame_bytes
    assert held <= max(pipeline.FRAME_BUFFER_BYTES, pipeline.batches_in_flight(1) * frame_bytes)
    assert 1 <= batch <= generator_batch and 1 <= depth <= 4
    if pipeline.batches_in_flight(4) * generator_batch * frame_bytes <= pipeline.FRAME_BUFFER_BYTES:
        assert (batch, depth) == (generator_batch, 4)  # small frames: as before


def float_wav(path, samples, rate=16000):
    wavfile.write(path, rate, np.asarray(samples, np.float32))
    return path


@pytest.fixture
def no_generator(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the generator was loaded")

    monkeypatch.setattr(pipeline, "generator_for", refuse)


@pytest.mark.parametrize("nan, inf, said", [(0, 10, "10 infinite"), (3, 0, "3 NaN"), (3, 10, "3 NaN and 10 infinite")])
def test_nan_or_infinite_samples_are_refused_before_any_work(tmp_path, checkpoint, no_generator, capsys,
                                                             nan, inf, said):
    samples = speech_like(1.0) * 0.5
    samples[1000:1000 + inf] = np.inf
    samples[5000:5000 + nan] = np.nan
    wav = float_wav(tmp_path / "speech.wav", samples)
    video = write_video(tmp_path / "face.mp4", face_frames(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one NumPy warning
        with pytest.raises(UserError) as refused:
            lip_sync(Options(checkpoint, str(video), str(wav), outfile=str(tmp_path / "out.mp4"), box=(20, 90, 30, 100),
                             progress=False))
    assert str(refused.value) == f"{wav}: the audio holds {said} sample(s) of 16,000; repair or re-export it"
    assert capsys.readouterr().err == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["face.mp4", "speech.wav"]


def test_stereo_float_audio_counts_the_samples_of_every_channel(tmp_path):
    samples = np.zeros((16000, 2), np.float32)
    samples[:4, 1] = -np.inf
    wav = float_wav(tmp_path / "stereo.wav", samples)
    with pytest.raises(UserError, match=r"holds 4 infinite sample\(s\) of 32,000;"):
        Speech(wav)


def test_samples_beyond_full_scale_are_clipped_for_the_mel_with_one_warning(tmp_path, capsys):
    samples = speech_like(1.0) * 0.5
    samples[1000:1005] = 1e30
    samples[8000:8003] = -2.0
    loud = float_wav(tmp_path / "loud.wav", samples)
    clipped = float_wav(tmp_path / "clipped.wav", np.clip(samples, -1, 1))
    speech = Speech(loud)
    assert capsys.readouterr().err == (f"warning: {loud}: 8 of 16,000 audio samples lie beyond full scale; "
                                       "clipped to [-1, 1]\n")
    starts = speech.chunk_starts(25.0)
    heard = np.stack(list(speech.chunks(starts)))
    expected = audio.melspectrogram(audio.load_wav(clipped, 16000)).astype(np.float32)
    np.testing.assert_array_equal(heard, np.stack([expected[:, start:start + 16] for start in starts]))
    Speech(clipped)
    assert capsys.readouterr().err == ""  # within full scale: nothing said


def test_samples_the_aac_encoder_would_refuse_reach_it_clipped(tmp_path, checkpoint, capsys):
    """1e30 made the AAC encoder fail after every frame was made (the error blamed reading the
    audio); clipped up front, the run finishes and says so in one line."""
    samples = speech_like(1.0) * 0.5
    samples[1000:1010] = 1e30
    loud = float_wav(tmp_path / "loud.wav", samples)
    video = write_video(tmp_path / "face.mp4", face_frames(5))
    outfile = tmp_path / "out.mp4"
    summary = lip_sync(Options(checkpoint, str(video), str(loud), outfile=str(outfile), box=(20, 90, 30, 100),
                               progress=False))
    frames = len(mel_chunk_starts(1 + 16000 // 200, 25.0))
    assert summary.frames == frames and outfile.is_file()
    assert capsys.readouterr().err == (f"warning: {loud}: 10 of 16,000 audio samples lie beyond full scale; "
                                       "clipped to [-1, 1]\n")
    heard = audio.load_wav(outfile, 16000)
    assert np.isfinite(heard).all() and np.abs(heard).max() < 1.5  # AAC rings a little around a clipped edge
    assert sum(1 for _ in containers.read_frames(outfile)) == frames


@pytest.mark.parametrize("fps", [25.0, 0.15])
def test_speech_chunks_equal_the_whole_mel_cut_at_each_start(tmp_path, fps):
    """What the generator gets, read a piece at a time (0.15 fps: a chunk every 533 columns,
    pieces skipped whole), is the whole-file mel's chunks."""
    wavfile.write(tmp_path / "speech.wav", 44100, speech_like(40.0, 44100))
    speech = Speech(tmp_path / "speech.wav")
    whole = audio.melspectrogram(audio.load_wav(tmp_path / "speech.wav", 16000)).astype(np.float32)
    starts = speech.chunk_starts(fps)
    assert speech.mel_frames == whole.shape[1] and starts == mel_chunk_starts(whole.shape[1], fps)
    chunks = np.stack(list(speech.chunks(starts)))
    assert np.array_equal(chunks, np.stack([whole[:, start:start + 16] for start in starts]))


def test_speech_takes_its_rate_and_mel_from_hparams(tmp_path, monkeypatch):
    """The speech is heard at hparams.sample_rate with hparams.num_mels bins, and its chunks
    follow the mel's own rate (sample_rate / hop_size), whatever --hparams made them."""
    from hparams import hparams

    wavfile.write(tmp_path / "speech.wav", 44100, speech_like(3.0, 44100))
    for name, value in {"sample_rate": 8000, "hop_size": 50, "fmax": 3800, "num_mels": 40}.items():
        monkeypatch.setitem(hparams._values, name, value)  # 160 mel columns a second
    speech = Speech(tmp_path / "speech.wav")
    whole = audio.melspectrogram(audio.load_wav(tmp_path / "speech.wav", 8000)).astype(np.float32)
    starts = speech.chunk_starts(25.0)
    assert speech.mel_frames == whole.shape[1] == 1 + 24000 // 50
    assert starts[:6] == [0, 6, 12, 19, 25, 32]  # 6.4 columns a frame
    chunks = np.stack(list(speech.chunks(starts)))
    assert chunks.shape == (len(starts), 40, 16)
    assert np.array_equal(chunks, np.stack([whole[:, start:start + 16] for start in starts]))
    with pytest.raises(UserError, match=r"^the audio is too short: 15 mel frames, at least 16 \(0.1 s\) needed$"):
        mel_chunk_starts(15, 25.0)
