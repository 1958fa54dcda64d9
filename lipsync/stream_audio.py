"""Speech as it is pushed, a chunk at a time: each frame's mel chunk as soon as its audio is in.

An utterance (the audio between two flushes) is cut into frames exactly as inference cuts a
speech file (audio_chunks.mel_chunk_starts): frame j gets the 16 mel columns from
int(j x 80 / fps), and the last frame, once the utterance is whole, the last 16. A frame is
ready when the audio of its mel window is in, plus the STFT's reach past the window's last
column (LOOKAHEAD_SECONDS in all, counted from the frame's start).
"""

import dataclasses
import sys
import time
from collections import deque
from fractions import Fraction

import numpy as np

import audio
from hparams import hparams
from models.inputs import MEL_STEP

# From a frame's start in the audio to the last sample its mel chunk needs: the 16 columns'
# 200 ms, and the STFT's half window past the last column's centre (one hop beyond them).
LOOKAHEAD_SECONDS = (MEL_STEP + 1) * audio.get_hop_size() / hparams.sample_rate
SILENCE_DB = -50.0  # a mel window's RMS level below which nobody speaks (room noise: -60 to -50 dBFS)


@dataclasses.dataclass
class FrameAudio:
    """What one output frame gets from the speech."""

    index: int  # in the utterance
    mel: np.ndarray  # (num_mels, MEL_STEP) float32, or None: too little audio for a mel window
    samples: np.ndarray  # float32 at hparams.sample_rate: the audio played with this frame
    level_db: float  # RMS of the mel window's audio, dB relative to full scale
    window_in_at: float  # time.perf_counter() when the window's audio had all been pushed


class Utterance:
    """One stretch of speech, pushed as 16-kHz float32 blocks: the frames each push completes."""

    def __init__(self, fps):
        self.fps, self.rate = Fraction(fps).limit_denominator(1001), hparams.sample_rate
        self.hop, self.step = audio.get_hop_size(), audio.mel_fps() / float(self.fps)
        self.mel = audio.MelStream()
        self.columns, self.columns_from = np.zeros((hparams.num_mels, 0), np.float32), 0
        self.samples, self.samples_from, self.length = np.zeros(0, np.float32), 0, 0
        self.next = 0  # the next frame to hand out
        self.pushes = deque()  # (samples pushed so far, when): when each frame's window was in

    def push(self, samples, now=None):
        """The frames that ``samples`` (float32, hparams.sample_rate) complete."""
        if not len(samples):
            return []
        self.length += len(samples)
        self.pushes.append((self.length, time.perf_counter() if now is None else now))
        self.samples = np.concatenate([self.samples, samples])
        self._add_columns(self.mel.push(samples))
        ready = []
        while self._start(self.next) + MEL_STEP <= self.mel.done:
            ready.append(self._frame(self._start(self.next)))
        return ready

    def finish(self):
        """The frames left once the utterance is whole: as many as inference makes of a file
        this long, the last one with the last mel columns; then, for the audio beyond the last
        frame (inference cuts it with the picture), frames without mel chunks (shown idle), as
        for audio too short for a mel window."""
        self._add_columns(self.mel.finish())
        total, frames = audio.mel_columns(self.length) if self.length else 0, []
        if total >= MEL_STEP:
            while self._start(self.next) + MEL_STEP <= total:
                frames.append(self._frame(self._start(self.next)))
            frames.append(self._frame(total - MEL_STEP))
        while self._audio_start(self.next) < self.length:
            frames.append(self._frame(None))
        return frames

    def _start(self, index):
        return int(index * self.step)

    def _audio_start(self, index):
        return int(index * self.rate / self.fps)

    def _add_columns(self, columns):
        self.columns = np.concatenate([self.columns, columns.astype(np.float32)], axis=1)

    def _frame(self, start):
        index, hop = self.next, self.hop
        begin, end = self._audio_start(index), self._audio_start(index + 1)
        samples = self._held(begin, end)
        samples = np.pad(samples, (0, end - begin - len(samples)))  # the audio ended in this frame
        if start is None:
            mel, window, window_end = None, samples, min(self.length, end)
        else:
            mel = self.columns[:, start - self.columns_from:start - self.columns_from + MEL_STEP].copy()
            window_end = min(self.length, hop * (start + MEL_STEP))
            window = self._held(hop * start, window_end)
        frame = FrameAudio(index, mel, samples, level_db(window), self._pushed_by(window_end))
        self.next += 1
        # what a later frame may need: the next one's, or the last one's (the last 16 columns, once whole)
        column = max(0, min(self._start(self.next), self.mel.done - MEL_STEP))
        self._forget_before(min(self._audio_start(self.next), hop * column), column)
        return frame

    def _held(self, begin, end):
        return self.samples[max(0, begin - self.samples_from):max(0, end - self.samples_from)]

    def _pushed_by(self, sample):
        """When the pushed samples first reached ``sample``."""
        while len(self.pushes) > 1 and self.pushes[0][0] < sample:
            self.pushes.popleft()
        return self.pushes[0][1]

    def _forget_before(self, sample, column):
        """Drop the samples and columns no later frame needs."""
        if sample > self.samples_from:
            self.samples, self.samples_from = self._held(sample, self.samples_from + len(self.samples)), sample
        if column > self.columns_from:
            self.columns = self.columns[:, min(column - self.columns_from, self.columns.shape[1]):]
            self.columns_from = column


def slot_samples(k, fps, rate=None):
    """Samples at ``rate`` (hparams.sample_rate) of output frame k's slot: int((k + 1) rate / fps)
    - int(k rate / fps), so that slots add up to the frames' time at any frame rate."""
    rate, fps = rate or hparams.sample_rate, Fraction(fps).limit_denominator(1001)
    return int((k + 1) * rate / fps) - int(k * rate / fps)


def level_db(samples):
    """RMS level of ``samples`` in dB relative to full scale (-inf for silence or none)."""
    if not len(samples):
        return -np.inf
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10 * np.log10(power) if power > 0 else -np.inf


class AudioInput:
    """Pushed chunks made what inference reads from a file: mono float32 at
    hparams.sample_rate, within [-1, 1]. int16 is scaled as decoders scale it; NaN and
    infinite samples become silence (one warning per stream, then a count); a new rate
    restarts the resampler."""

    def __init__(self):
        self.rate, self.resampler, self.bad_samples = None, None, 0

    def take(self, samples, sample_rate):
        """The chunk at hparams.sample_rate (possibly empty: the resampler holds some back)."""
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"push_audio takes 1-D samples (mono), not an array of shape {samples.shape}")
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768
        elif samples.dtype.kind not in "f":
            raise ValueError(f"push_audio takes float samples in [-1, 1] or int16, not {samples.dtype}")
        samples = samples.astype(np.float32, copy=False)
        finite = np.isfinite(samples)
        if not finite.all():
            if not self.bad_samples:
                print("warning: the pushed audio holds NaN or infinite samples: played as silence", file=sys.stderr)
            self.bad_samples += int((~finite).sum())
            samples = np.where(finite, samples, np.float32(0))
        samples = np.clip(samples, -1, 1)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"push_audio: the sample rate must be a positive whole number of Hz, not {sample_rate!r}")
        sample_rate = int(sample_rate)
        tail = np.zeros(0, np.float32)
        if sample_rate != self.rate:
            tail = self.finish()
            self.rate = sample_rate
            self.resampler = audio.Resampler(sample_rate, hparams.sample_rate) \
                if sample_rate != hparams.sample_rate else None
        if self.resampler is None:
            return np.concatenate([tail, samples])
        return np.concatenate([tail, self.resampler.push(samples)])

    def reset(self):
        """Drop what the resampler holds (an interruption)."""
        self.rate, self.resampler = None, None

    def finish(self):
        """What the resampler still holds, once the audio so far is complete."""
        tail = self.resampler.finish() if self.resampler is not None else np.zeros(0, np.float32)
        self.rate, self.resampler = None, None
        return tail.astype(np.float32, copy=False)
