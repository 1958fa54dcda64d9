"""Audio in, mel spectrogram out: the features Wav2Lip and its expert SyncNet were trained on.

The names and the numbers are the reference implementation's (hparams.py holds the values);
decoding goes through PyAV, so any file FFmpeg reads works, with no shell and no temporary files.

Decoding, resampling and the mel spectrogram go a block at a time (``mono_blocks``,
``mel_pieces``), so what inference holds does not grow with the audio's length; ``load_wav``
and ``melspectrogram`` join the blocks into the whole, with the same numbers.

The pre-emphasis filter, the STFT and the mel filters are written out with NumPy: they equal
scipy's lfilter, librosa's stft and librosa's mel filters bit for bit (tests/foundations/test_audio.py
checks), and importing those costs about 2 s of start-up (scipy.signal, numba), longer than
the mel of a minute of speech.
"""

import dataclasses
import functools

import av
import numpy as np

from hparams import hparams as hp
from media.containers import open_media
from system.atomic_write import atomic_output
from system.errors import UserError

# Mel columns computed at once (12.5 s of audio at mel_fps()'s 80 a second): the whole signal
# is never held, and every signal is cut at the same columns, so a mel computed in a stream
# equals one computed whole bit for bit (BLAS may sum a narrow matrix product in another order).
MEL_PIECE = 1000
_FLOAT_FORMATS = {"flt", "fltp", "dbl", "dblp"}  # integer samples are always finite and within full scale


def load_wav(path, sr):
    """The first audio stream of any FFmpeg-readable file as mono float32 at ``sr`` Hz.

    Channels are averaged and the result resampled as ``librosa.load(path, sr=sr)`` does.
    """
    return np.ascontiguousarray(np.concatenate(list(mono_blocks(path, sr))), dtype=np.float32)


def mono_blocks(path, sr, clip=False):
    """``load_wav``'s samples a block at a time (a decoded frame or so), never the whole file;
    with ``clip``, each channel's samples clipped to [-1, 1] first."""
    channels = channel_blocks(path)
    rate, first = next(channels)
    mixed = (_mono(np.clip(block, -1, 1) if clip else block) for block in _chained(first, channels))
    return _resampled(mixed, rate, sr)


def _chained(first, blocks):
    yield first
    for _, block in blocks:
        yield block


def _mono(channels):
    return channels.mean(axis=0) if channels.shape[0] > 1 else channels[0]


def _resampled(blocks, rate, sr):
    """float32 ``blocks`` at ``rate`` Hz resampled to ``sr`` as librosa.resample does the whole
    signal (Resampler)."""
    if rate == sr:
        yield from blocks
        return
    resampler = Resampler(rate, sr)
    for block in blocks:
        yield resampler.push(block)
    yield resampler.finish()


class BlockReader:
    """Samples from ``blocks`` (arrays of any lengths, in order), taken a number at a time;
    fewer, then none, once the blocks end."""

    def __init__(self, blocks):
        self._blocks, self._held = iter(blocks), np.zeros(0, np.float32)

    def take(self, count):
        parts, have = [self._held], len(self._held)
        while have < count and (block := next(self._blocks, None)) is not None:
            parts.append(block)
            have += len(block)
        parts = [part for part in parts if len(part)] or [self._held]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)  # one part is not copied
        taken, self._held = joined[:count], joined[count:]
        return taken


class Resampler:
    """A signal pushed a block at a time, resampled from ``rate`` to ``sr`` Hz as
    librosa.resample does the whole of it: soxr's HQ filter, whose stream gives the same
    samples, then cut or padded with zeros to ceil(length x ratio) at ``finish()``."""

    def __init__(self, rate, sr):
        import soxr  # noqa: PLC0415 - only where audio needs resampling

        self.stream, self.ratio = soxr.ResampleStream(rate, sr, 1, dtype="float32", quality="HQ"), float(sr) / rate
        self.taken, self.given, self.over = 0, 0, np.zeros(0, np.float32)

    def push(self, block):
        """The resampled samples that ``block`` (float32) completes: none past ceil(taken x ratio)."""
        self.taken += len(block)
        out = np.concatenate([self.over, self.stream.resample_chunk(np.asarray(block, np.float32))])
        known = int(np.ceil(self.taken * self.ratio)) - self.given  # the length is at least this much so far
        self.over, out = out[known:], out[:known]
        self.given += len(out)
        return out

    def finish(self):
        """The last samples: the filter's tail, cut or zero-padded to the signal's length."""
        out = np.concatenate([self.over, self.stream.resample_chunk(np.zeros(0, np.float32), last=True)])
        length = int(np.ceil(self.taken * self.ratio)) - self.given
        self.given += length
        return np.pad(out[:length], (0, length - len(out[:length])))


def check_finite(samples, path):
    """Refuse audio holding NaN or infinite samples, in one line naming the file and which.

    Such samples make every mel frame they touch NaN (the generator then draws garbage, the
    AAC encoder refuses them); the cause is the file, so the message names it.
    """
    samples = np.asarray(samples)
    if np.isfinite(samples).all():
        return samples
    _refuse_non_finite(int(np.isnan(samples).sum()), int(np.isinf(samples).sum()), samples.size, path)


def _refuse_non_finite(nan, inf, size, path):
    what = " and ".join(part for part in (f"{nan:,} NaN" * bool(nan), f"{inf:,} infinite" * bool(inf)) if part)
    raise UserError(f"{path}: the audio holds {what} sample(s) of {size:,}; repair or re-export it")


@dataclasses.dataclass(frozen=True)
class Scan:
    """What one decoding pass found in an audio stream."""

    rate: int  # Hz
    length: int  # samples per channel
    samples: int  # in all channels
    beyond_full_scale: int  # finite samples outside [-1, 1] (float formats only)

    def length_at(self, sr):
        """Samples per channel once resampled to ``sr`` (``load_wav``'s length)."""
        return self.length if sr == self.rate else int(np.ceil(self.length * (float(sr) / self.rate)))


def scan(path):
    """One pass over the first audio stream, a decoded frame at a time: its rate, its length
    and how many samples lie beyond full scale. NaN or infinite samples are refused in one line
    naming the file (as ``check_finite`` words it), before any work is done with the audio."""
    rate = length = samples = nan = inf = beyond = 0
    for frame in _decoded(path):
        rate, length = frame.sample_rate, length + frame.samples
        samples += frame.samples * frame.layout.nb_channels
        if frame.format.name in _FLOAT_FORMATS:
            values = frame.to_ndarray()
            nan, inf = nan + int(np.isnan(values).sum()), inf + int(np.isinf(values).sum())
            beyond += int((np.abs(values) > 1).sum())  # NaN compares false, infinities count here
    if nan or inf:
        _refuse_non_finite(nan, inf, samples, path)
    if not length:
        raise UserError(f"{path} has an audio stream with no samples")
    return Scan(rate, length, samples, beyond)


def native_sample_rate(path):
    """The sample rate of the first audio stream, without decoding it."""
    with open_media(path, "audio") as container:
        return _audio_stream(container, path).rate


def _audio_stream(container, path):
    if not container.streams.audio:
        raise UserError(f"{path} has no audio stream")
    return container.streams.audio[0]


def _decoded(path):
    """The first audio stream's decoded frames (PyAV AudioFrames), one at a time."""
    try:
        with open_media(path, "audio") as container:
            yield from container.decode(_audio_stream(container, path))
    except av.error.FFmpegError as error:
        raise UserError(f"cannot read audio from {path}: {error}") from None


def channel_blocks(path):
    """(rate, float32 (channels, n) samples) of the first audio stream, a decoded frame at a time."""
    # Planar float keeps every channel apart, whatever the codec's own sample format.
    resampler, rate, length = av.AudioResampler(format="fltp"), None, 0
    for frame in _decoded(path):
        rate = frame.sample_rate
        for out in resampler.resample(frame):
            length += out.samples
            yield rate, out.to_ndarray()
    for out in resampler.resample(None):
        length += out.samples
        yield rate, out.to_ndarray()
    if not length:
        raise UserError(f"{path} has an audio stream with no samples")


def _decode_audio(path):
    blocks = list(channel_blocks(path))
    return blocks[-1][0], np.concatenate([block for _, block in blocks], axis=1)


def save_wav(wav, path, sr):
    """Peak-normalised 16-bit PCM, as the reference writes it (without scaling ``wav`` in place)."""
    from scipy.io import wavfile  # noqa: PLC0415 - here, as only writers need it

    wav = np.asarray(wav, dtype=np.float64) * (32767 / max(0.01, float(np.max(np.abs(wav)))))
    with atomic_output(path) as temporary:
        wavfile.write(temporary, sr, wav.astype(np.int16))


def extract_wav(source, path):
    """The first audio stream of ``source`` as 16-bit PCM WAV at its own rate and channels,
    as ``ffmpeg -i source path.wav`` writes it; written atomically. A track holding NaN or
    infinite samples is refused (check_finite): 16-bit PCM would turn them into silence and
    full-scale clicks."""
    from scipy.io import wavfile  # noqa: PLC0415

    rate, channels = _decode_audio(source)
    check_finite(channels, source)
    pcm = np.clip(np.round(channels.T * 32768.0), -32768, 32767).astype(np.int16)
    with atomic_output(path) as temporary:
        wavfile.write(temporary, rate, pcm[:, 0] if pcm.shape[1] == 1 else pcm)


def preemphasis(wav, k, preemphasize=True, previous=None):
    """y[n] = x[n] - k x[n-1], in float64 (scipy.signal.lfilter([1, -k], [1], wav)); ``previous``
    is the sample before ``wav``'s first, where it continues a signal."""
    if not preemphasize:
        return wav
    wav = np.asarray(wav, dtype=np.float64)
    out = wav.copy()
    out[1:] -= k * wav[:-1]
    if previous is not None:
        out[0] -= k * np.float64(previous)
    return out


def get_hop_size():
    if hp.hop_size is not None:
        return hp.hop_size
    return int(hp.frame_shift_ms / 1000 * hp.sample_rate)


def mel_fps():
    """Mel columns per second of audio (80.0 with hparams.py's values): one every hop at
    hparams.sample_rate. A function, as --hparams may change either after import."""
    return hp.sample_rate / get_hop_size()


def melspectrogram(wav):
    """(num_mels, 1 + len(wav) // hop_size) normalised log-mel spectrogram, in [-4, 4]."""
    return np.concatenate(list(mel_pieces([wav])), axis=1)


def mel_columns(length):
    """The mel spectrogram's width for ``length`` samples: one column per hop of the padded signal."""
    return (length + 2 * (hp.n_fft // 2) - hp.n_fft) // get_hop_size() + 1


def mel_pieces(blocks):
    """``melspectrogram`` of the signal that ``blocks`` (arrays of samples, in order) make up, as
    consecutive pieces of its columns: MEL_PIECE columns each, the last one up to twice that.
    About two pieces' worth of the signal is held at a time."""
    hop, half = get_hop_size(), hp.n_fft // 2
    held, held_from, length, done, previous = [], 0, 0, 0, None  # emphasised samples from held_from on
    for block in blocks:
        if not len(block):
            continue
        held.append(preemphasis(block, hp.preemphasis, hp.preemphasize, previous))
        previous, length = block[-1], length + len(block)
        if mel_columns(length) < done + 2 * MEL_PIECE:
            continue
        signal = np.concatenate(held)
        while mel_columns(length) >= done + 2 * MEL_PIECE:  # a piece that cannot be the last one
            yield _mel(_frames_of(signal, held_from, done, done + MEL_PIECE))
            done += MEL_PIECE
        held = [signal[hop * done - half - held_from:]]
        held_from = hop * done - half
    signal = np.concatenate(held) if held else np.zeros(0, np.float64)
    if done == 0:  # the whole signal, padded as librosa pads it
        yield _mel(_frames(np.pad(signal, half, mode="reflect")))
    else:
        yield _mel(_frames_of(signal, held_from, done, mel_columns(length), length))


class MelStream:
    """``melspectrogram`` of a signal pushed a block at a time, each column as soon as it is
    final: column c spans samples c x hop +- n_fft / 2, so it is known once those are in (the
    first columns reflect the signal's start, which is known from the first sample). The
    columns near the end reflect the end, so ``finish()`` gives them once the signal is whole.
    Only the samples of the columns not yet computed are held.

    The whole signal's numbers in float32, as the generator takes them (tested on minutes of
    speech): the mel filters' matrix product runs on one BLAS thread, over a few columns at a
    time, where the whole signal's runs on all of them over a thousand, and BLAS sums those
    in another order (last-bit float64 differences). All BLAS threads for two columns every
    20 ms cost 10x the CPU, fighting the generator's threads for the cores.
    """

    def __init__(self):
        self.held, self.held_from, self.length, self.done, self.previous = [], 0, 0, 0, None

    def push(self, block):
        """The (num_mels, k) columns that ``block`` completes (k may be 0)."""
        block = np.asarray(block)
        if not len(block):
            return self._none()
        self.held.append(preemphasis(block, hp.preemphasis, hp.preemphasize, self.previous))
        self.previous, self.length = block[-1], self.length + len(block)
        hop, half = get_hop_size(), hp.n_fft // 2
        # columns not touching the end (the first ones reflect the start: sample n_fft / 2 is needed)
        final = (self.length - half) // hop + 1 if self.length > half else 0
        if final <= self.done:
            return self._none()
        signal = np.concatenate(self.held)
        columns = self._mel(_frames_of(signal, self.held_from, self.done, final))
        self.done = final
        keep_from = max(self.held_from, hop * final - half)
        self.held, self.held_from = [signal[keep_from - self.held_from:]], keep_from
        return columns

    def finish(self):
        """The last columns, whose STFT frames reflect the signal's end."""
        signal = np.concatenate(self.held) if self.held else np.zeros(0, np.float64)
        if self.length == 0:
            return self._none()
        if self.done == 0:  # the whole signal, padded as librosa pads it
            return self._mel(_frames(np.pad(signal, hp.n_fft // 2, mode="reflect")))
        return self._mel(_frames_of(signal, self.held_from, self.done, mel_columns(self.length), self.length))

    @staticmethod
    def _mel(frames):
        with _one_blas_thread():
            return _mel(frames)

    @staticmethod
    def _none():
        return np.zeros((hp.num_mels, 0), np.float64)


@functools.lru_cache(maxsize=1)
def _blas():
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - only where audio streams

    return ThreadpoolController()


def _one_blas_thread():
    return _blas().limit(limits=1, user_api="blas")


def _frames_of(signal, start, first, stop, length=None):
    """The STFT frames of columns ``first`` to ``stop`` - 1 of a signal held from sample
    ``start`` on, as np.pad(mode="reflect") pads it: reflected at its first sample and, given
    its ``length``, at its last one."""
    hop, half = get_hop_size(), hp.n_fft // 2
    at = np.abs(np.arange(hop * first - half, hop * (stop - 1) - half + hp.n_fft))
    if length is not None:
        at = np.where(at >= length, 2 * (length - 1) - at, at)
    return _frames(signal[at - start])


def _frames(padded):
    """Frames of n_fft samples every hop of a padded signal (views, not copies)."""
    return np.lib.stride_tricks.sliding_window_view(padded, hp.n_fft)[::get_hop_size()]


def _mel(frames):
    S = _amp_to_db(_linear_to_mel(np.abs(_spectrum(frames)))) - hp.ref_level_db
    return _normalize(S) if hp.signal_normalization else S


def _stft(y):
    """librosa.stft(y, n_fft, hop_length, win_length, pad_mode="reflect"): centred frames of the
    reflect-padded signal, a periodic Hann window, a real FFT per frame."""
    return _spectrum(_frames(np.pad(y, hp.n_fft // 2, mode="reflect")))


def _spectrum(frames):
    if hp.use_lws:
        raise ValueError("use_lws=True is not supported: the released models use librosa's STFT")
    # Reflect padding is what librosa did when the models were trained; since librosa 0.10 the
    # default is zero padding, which changes the first and last two frames.
    spectrum = np.fft.rfft(frames * _hann_window(hp.win_size, hp.n_fft), axis=1).T
    return spectrum.astype(np.complex64, copy=False) if frames.dtype == np.float32 else spectrum


@functools.lru_cache(maxsize=2)
def _hann_window(length, n_fft):
    """The periodic Hann window of ``length`` centred in ``n_fft`` samples, computed as
    scipy.signal.get_window("hann", length) computes it."""
    angles = np.linspace(-np.pi, np.pi, length + 1)
    window = (0.5 + 0.5 * np.cos(angles))[:-1]
    left = (n_fft - length) // 2
    return np.pad(window, (left, n_fft - length - left))


def _linear_to_mel(spectrogram):
    return np.dot(_mel_basis(hp.sample_rate, hp.n_fft, hp.num_mels, hp.fmin, hp.fmax), spectrogram)


@functools.lru_cache(maxsize=4)
def _mel_basis(sample_rate, n_fft, num_mels, fmin, fmax):
    """Slaney's area-normalised triangular mel filters, float32, computed step for step as
    librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=) computes them."""
    if fmax > sample_rate // 2:
        raise ValueError(f"fmax {fmax} is above the Nyquist frequency of {sample_rate} Hz audio")
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), num_mels + 2))
    ramps = np.subtract.outer(edges, np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate))
    widths = np.diff(edges)
    weights = np.zeros((num_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(num_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:num_mels + 2] - edges[:num_mels]))[:, np.newaxis]
    return weights


# Slaney's mel scale: linear below 1 kHz, logarithmic above
_MEL_STEP_HZ, _LOG_HZ, _LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asanyarray(hz)  # a scalar, as the filters need it
    mel = hz / _MEL_STEP_HZ
    return _LOG_HZ / _MEL_STEP_HZ + np.log(hz / _LOG_HZ) / _LOG_STEP if hz >= _LOG_HZ else mel


def _mel_to_hz(mels):
    hz = _MEL_STEP_HZ * mels
    log = mels >= _LOG_HZ / _MEL_STEP_HZ
    hz[log] = _LOG_HZ * np.exp(_LOG_STEP * (mels[log] - _LOG_HZ / _MEL_STEP_HZ))
    return hz


def _amp_to_db(x):
    min_level = np.exp(hp.min_level_db / 20 * np.log(10))
    return 20 * np.log10(np.maximum(min_level, x))


def _normalize(S):
    m, low = hp.max_abs_value, hp.min_level_db
    if hp.symmetric_mels:
        scaled = (2 * m) * ((S - low) / -low) - m
        return np.clip(scaled, -m, m) if hp.allow_clipping_in_normalization else scaled
    scaled = m * ((S - low) / -low)
    return np.clip(scaled, 0, m) if hp.allow_clipping_in_normalization else scaled
