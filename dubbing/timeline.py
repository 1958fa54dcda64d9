"""Speech for timed cues, placed on one track: each cue's speech starts at its cue's start,
speech longer than its cue is sped up (pitch kept) by at most ``max_speedup``, and speech
that still runs over delays the cues after it rather than talking over them."""

import dataclasses

import librosa
import numpy as np


@dataclasses.dataclass
class Placement:
    cue: object  # dubbing.subtitles.Cue
    start: float  # seconds where its speech starts on the track
    seconds: float  # how long its speech lasts there
    speedup: float  # 1.0, or how much faster than synthesised it is played
    delay: float  # seconds after the cue's start (the speech before it ran over)

    @property
    def end(self):
        """Where its speech ends on the track."""
        return self.start + self.seconds

    @property
    def overrun(self):
        """Seconds its speech runs past the end of its cue."""
        return max(0.0, self.end - self.cue.end)

    def notes(self, max_speedup):
        """What a user should hear about this cue, as lines (none when it fits)."""
        where = f"cue at line {self.cue.line} ({self.cue.start:.3f}-{self.cue.end:.3f} s)"
        lines = []
        if self.delay > 0:
            lines.append(f"{where}: delayed by {self.delay:.3f} s, the speech before it ran over")
        if self.speedup >= max_speedup and self.overrun > 0:
            lines.append(f"{where}: the speech is too long even at {max_speedup:g}x; it runs "
                         f"{self.overrun:.3f} s past the cue's end")
        return lines


def place_speech(cues, speeches, max_speedup=1.3):
    """(track samples, sample rate, [Placement]) for ``speeches`` (dubbing.speech.Speech, one
    per cue, all at one sample rate)."""
    rate = speeches[0].sample_rate
    placed, pieces, free_from = [], [], 0.0
    for cue, speech in zip(cues, speeches, strict=True):
        samples = speech.samples
        slot = cue.end - cue.start
        speedup = min(max(1.0, speech.seconds / slot), max_speedup)
        if speedup > 1.0:  # a phase vocoder: faster, at the same pitch
            samples = librosa.effects.time_stretch(samples, rate=speedup)
        start = max(cue.start, free_from)
        placed.append(Placement(cue, start, len(samples) / rate, speedup, start - cue.start))
        pieces.append((round(start * rate), samples))
        free_from = start + len(samples) / rate
    length = max(max(offset + len(samples) for offset, samples in pieces), round(cues[-1].end * rate))
    track = np.zeros(length, np.float32)
    for offset, samples in pieces:
        track[offset:offset + len(samples)] += samples
    return track, rate, placed
