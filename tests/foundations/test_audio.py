import numpy as np
import pytest
from scipy.io import wavfile

import audio
from media.synthetic import speech_like, tone, write_media
from system.errors import UserError

# --- an independent float64 mel spectrogram, from the reference's audio settings ----------------

def _hz_to_mel(f):
    f = np.asarray(f, np.float64)
    linear = f / (200.0 / 3)  # Slaney: linear below 1 kHz, logarithmic above
    log_step = np.log(6.4) / 27.0
    return np.where(f >= 1000, 15.0 + np.log(np.maximum(f, 1000) / 1000) / log_step, linear)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000 * np.exp(log_step * (m - 15.0)), m * 200.0 / 3)


def slaney_filterbank(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600):
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        rising = (freqs - edges[i]) / (edges[i + 1] - edges[i])
        falling = (edges[i + 2] - freqs) / (edges[i + 2] - edges[i + 1])
        bank[i] = np.maximum(0, np.minimum(rising, falling)) * 2.0 / (edges[i + 2] - edges[i])  # area-normalised
    return bank


def reference_mel(wav, pad_mode="reflect"):
    x = np.asarray(wav, np.float64)
    y = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    padded = np.pad(y, 400, mode=pad_mode)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)  # periodic Hann
    frames = np.stack([padded[t * 200:t * 200 + 800] for t in range(1 + len(y) // 200)])
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T
    db = 20 * np.log10(np.maximum(1e-5, slaney_filterbank() @ magnitude)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def test_melspectrogram_matches_independent_float64_computation():
    wav = speech_like(1.37, seed=3)
    mel = audio.melspectrogram(wav)
    expected = reference_mel(wav)
    assert mel.shape == (80, 1 + len(wav) // 200) == expected.shape
    assert np.max(np.abs(mel - expected)) <= 1e-3


@pytest.mark.parametrize("length", [801, 3200, 16037, 90001])
def test_preemphasis_and_stft_equal_scipy_and_librosa_bit_for_bit(length):
    """audio.py writes these two out in NumPy to save ~2 s of imports; the released models
    were trained on scipy's lfilter and librosa's stft, so the numbers must be theirs exactly."""
    import librosa
    from scipy.signal import lfilter

    wav = (np.random.default_rng(length).standard_normal(length) * 0.1).astype(np.float32)
    emphasised = audio.preemphasis(wav, 0.97)
    expected = lfilter([1, -0.97], [1], wav)
    assert emphasised.dtype == expected.dtype and np.array_equal(emphasised, expected)
    for y in (emphasised, wav):  # float64 (as used) and float32 (hparams.preemphasize=False)
        stft = audio._stft(y)
        expected = librosa.stft(y=y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect")
        assert stft.dtype == expected.dtype and np.array_equal(stft, expected)


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(16000, 800, 80, 55, 7600), (16000, 800, 80, 0, 8000),
                                                         (22050, 1024, 128, 20, 11025), (16000, 512, 40, 1500, 7000)])
def test_mel_filters_equal_librosa_bit_for_bit(sr, n_fft, n_mels, fmin, fmax):
    import librosa

    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    filters = audio._mel_basis(sr, n_fft, n_mels, fmin, fmax)
    assert filters.dtype == expected.dtype and np.array_equal(filters, expected)


def test_mel_start_up_imports_neither_scipy_signal_nor_numba(tmp_path):
    script = ("import sys; sys.path.insert(0, '.'); import audio, numpy as np; "
              "audio.melspectrogram(np.zeros(3200, np.float32)); "
              "print(sorted({'scipy.signal', 'numba', 'torch'} & set(sys.modules)))")
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(audio.__file__).parent)
    assert done.stdout.strip() == "[]"


def test_melspectrogram_pads_by_reflection_at_both_ends():
    wav = speech_like(0.6, seed=5)
    mel = audio.melspectrogram(wav)
    reflected, zero_padded = reference_mel(wav, "reflect"), reference_mel(wav, "constant")
    for edge in (slice(0, 2), slice(-2, None)):
        assert np.max(np.abs(mel[:, edge] - reflected[:, edge])) <= 1e-3
        assert np.max(np.abs(mel[:, edge] - zero_padded[:, edge])) > 0.05  # the padding really matters there
    assert np.max(np.abs(mel[:, 2:-2] - zero_padded[:, 2:-2])) <= 1e-3


def test_silence_gives_finite_floor_values():
    mel = audio.melspectrogram(np.zeros(3200, np.float32))
    assert mel.shape == (80, 17)
    assert np.all(np.isfinite(mel)) and np.all(mel == -4.0)


def test_load_wav_mixes_channels_exactly_for_pcm(tmp_path):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-20000, 20000, size=(1600, 2), dtype=np.int16)
    wavfile.write(tmp_path / "stereo.wav", 16000, pcm)
    wav = audio.load_wav(tmp_path / "stereo.wav", 16000)
    assert wav.dtype == np.float32
    np.testing.assert_allclose(wav, pcm.astype(np.float64).mean(axis=1) / 32768, atol=1e-7)


def test_load_wav_resamples_as_librosa_does(tmp_path):
    import librosa

    signal = tone(300, 0.5, 44100, amplitude=0.3)
    wavfile.write(tmp_path / "tone.wav", 44100, (signal * 32767).astype(np.int16))
    wav = audio.load_wav(tmp_path / "tone.wav", 16000)
    native = (signal * 32767).astype(np.int16).astype(np.float32) / 32768
    np.testing.assert_allclose(wav, librosa.resample(native, orig_sr=44100, target_sr=16000), atol=1e-6)
    assert len(wav) == 8000


@pytest.mark.parametrize("name, audio_codec, video_codec, rate", [
    ("speech.wav", "pcm_s16le", None, 44100),
    ("speech.flac", "flac", None, 22050),
    ("speech.mp3", "libmp3lame", None, 44100),
    ("speech.m4a", "aac", None, 48000),
    ("speech.ogg", "libopus", None, 48000),
    ("clip.mp4", "aac", "libx264", 44100),
    ("clip.mov", "aac", "mpeg4", 32000),
    ("clip.mkv", "pcm_s16le", "libx264", 16000),
    ("clip.webm", "libopus", "libvpx", 48000),
])
def test_load_wav_reads_audio_of_common_formats(tmp_path, name, audio_codec, video_codec, rate):
    # Left 440 Hz, right 1000 Hz: the mono mix holds both at half the amplitude.
    stereo = np.stack([tone(440, 1.0, rate), tone(1000, 1.0, rate)])
    path = write_media(tmp_path / name, stereo, rate, audio_codec, video_codec)
    wav = audio.load_wav(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert 16000 <= len(wav) <= 16000 + 1200  # lossy codecs add their encoder delay
    middle = wav[3000:11000]
    spectrum = np.abs(np.fft.rfft(middle))
    peaks = sorted(np.fft.rfftfreq(len(middle), 1 / 16000)[np.argsort(spectrum)[-2:]])
    assert peaks == [440, 1000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.25, rel=0.1)  # two 0.25-peak sines


def test_load_wav_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="audio file not found"):
        audio.load_wav(tmp_path / "missing.wav", 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(UserError, match="audio file is empty"):
        audio.load_wav(tmp_path / "empty.wav", 16000)
    (tmp_path / "junk.mp3").write_bytes(b"this is not audio at all" * 50)
    with pytest.raises(UserError, match="cannot read .*junk.mp3 as media"):
        audio.load_wav(tmp_path / "junk.mp3", 16000)
    video_only = write_media(tmp_path / "silent.mp4", None, 0, None, "libx264")
    with pytest.raises(UserError, match="has no audio stream"):
        audio.load_wav(video_only, 16000)


def test_save_wav_peak_normalises_without_touching_its_input(tmp_path):
    wav = np.array([0.0, 0.25, -0.5, 0.1], np.float32)
    before = wav.copy()
    audio.save_wav(wav, tmp_path / "out.wav", 16000)
    rate, written = wavfile.read(tmp_path / "out.wav")
    assert rate == 16000 and written.dtype == np.int16
    np.testing.assert_array_equal(written, (before * (32767 / 0.5)).astype(np.int16))
    np.testing.assert_array_equal(wav, before)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def whole_signal_mel(wav):
    """The mel spectrogram computed on the whole signal at once, as it was before pieces."""
    S = audio._amp_to_db(audio._linear_to_mel(np.abs(audio._stft(audio.preemphasis(wav, 0.97))))) - 20
    return audio._normalize(S)


@pytest.mark.parametrize("seconds", [25.0, 25.0 + 1 / 16000, 37.3, 50.0 - 1 / 16000])
def test_mel_in_pieces_equals_the_whole_signal_computation(seconds):
    """The mel is computed MEL_PIECE columns at a time (the last piece up to twice that), from
    blocks of any sizes: a stream gives what the whole signal gives, bit for bit."""
    wav = speech_like(seconds, seed=4)
    mel = audio.melspectrogram(wav)
    assert mel.shape == (80, 1 + len(wav) // 200) and mel.shape[1] >= 2 * audio.MEL_PIECE
    np.testing.assert_allclose(mel, whole_signal_mel(wav), rtol=0, atol=1e-12)  # 0 here: BLAS sums each column alike
    cuts = np.sort(np.random.default_rng(len(wav)).integers(0, len(wav), 60))
    pieces = list(audio.mel_pieces(np.split(wav, cuts)))
    assert [piece.shape[1] for piece in pieces[:-1]] == [audio.MEL_PIECE] * (len(pieces) - 1)
    assert audio.MEL_PIECE <= pieces[-1].shape[1] < 2 * audio.MEL_PIECE
    assert np.array_equal(np.concatenate(pieces, axis=1), mel)


def test_load_wav_resamples_a_long_file_in_a_stream_as_librosa_does_it_whole(tmp_path):
    import librosa

    stereo = np.stack([speech_like(70, 44100, seed=1), speech_like(70, 44100, seed=2)]) * 0.5
    path = write_media(tmp_path / "long.flac", stereo, 44100, audio_codec="flac")
    native = audio._decode_audio(path)[1].mean(axis=0)
    wav = audio.load_wav(path, 16000)
    assert np.array_equal(wav, librosa.resample(native, orig_sr=44100, target_sr=16000))


def test_mel_fps_is_the_sample_rate_over_the_hop(monkeypatch):
    from hparams import hparams

    assert audio.mel_fps() == 80.0  # hparams.py's: 16 kHz, a hop of 200 samples
    monkeypatch.setitem(hparams._values, "hop_size", 160)
    assert audio.mel_fps() == 100.0
    monkeypatch.setitem(hparams._values, "hop_size", None)
    monkeypatch.setitem(hparams._values, "frame_shift_ms", 12.5)
    monkeypatch.setitem(hparams._values, "sample_rate", 22050)
    assert audio.mel_fps() == 22050 / 275


@pytest.mark.parametrize("seconds, chunk", [(0.02, 7), (0.2, 320), (1.3, 1), (3.7, 320), (9.0, 4001)])
def test_a_pushed_signal_gives_each_final_column_at_once_and_the_whole_mel_at_the_end(seconds, chunk):
    """MelStream: column c once samples up to c x hop + n_fft / 2 are in, the rest at finish();
    the whole signal's mel as the generator takes it (float32)."""
    wav = speech_like(seconds, seed=7)
    mel, stream, got = audio.melspectrogram(wav), audio.MelStream(), []
    for start in range(0, len(wav), chunk):
        got.append(stream.push(wav[start:start + chunk]))
        pushed = min(len(wav), start + chunk)
        assert stream.done == (max(0, (pushed - 400) // 200 + 1) if pushed > 400 else 0)
    got.append(stream.finish())
    got = np.concatenate(got, axis=1)
    assert got.shape == mel.shape and np.array_equal(got.astype(np.float32), mel.astype(np.float32))
    np.testing.assert_allclose(got, mel, rtol=0, atol=1e-12)  # float64: BLAS's order of sums, at most


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_a_signal_resampled_in_pushed_chunks_equals_it_resampled_whole(rate):
    samples = speech_like(1.3, rate=rate, seed=3)
    whole = np.concatenate(list(audio._resampled([samples], rate, 16000)))
    resampler = audio.Resampler(rate, 16000)
    chunks = [resampler.push(samples[i:i + rate // 50]) for i in range(0, len(samples), rate // 50)]
    got = np.concatenate([*chunks, resampler.finish()])
    assert len(got) == len(whole) == int(np.ceil(len(samples) * 16000 / rate))
    assert np.array_equal(got, whole)
