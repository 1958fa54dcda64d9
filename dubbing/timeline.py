"""Speech for timed cues, placed on one track: each cue's speech starts at its cue's start,
speech longer than its cue is sped up (pitch kept) by at most ``max_speedup``, and speech
that still runs over delays the cues after it rather than talking over them."""

import dataclasses

import librosa

_FAR_SECONDS, _FAR_TIMES = 3600, 10  # cues ending past both an hour and 10x the video are warned about


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


def place_speech(cues, speeches, add, max_speedup=1.3):
    """Place ``speeches`` (dubbing.speech.Speech, one per cue, all at one sample rate; any
    iterable, so that each can be made only when its cue is reached), passing each to
    ``add(start seconds, samples)`` as it is placed; returns the [Placement]s."""
    placed, free_from = [], 0.0
    for cue, speech in zip(cues, speeches, strict=True):
        samples = speech.samples
        slot = cue.end - cue.start
        speedup = min(max(1.0, speech.seconds / slot), max_speedup)
        if speedup > 1.0:  # a phase vocoder: faster, at the same pitch
            samples = librosa.effects.time_stretch(samples, rate=speedup)
        # Under half a sample later is not later (1.1 s + 0.3 s is 1.4000000000000001 s).
        start = free_from if round((free_from - cue.start) * speech.sample_rate) > 0 else cue.start
        placed.append(Placement(cue, start, len(samples) / speech.sample_rate, speedup, start - cue.start))
        add(start, samples)
        free_from = placed[-1].end
    return placed


def far_past_the_video(cues, video_seconds, path):
    """A warning line when the cues run far past the video (more than an hour, and more than ten
    times the video's length; 0 for a still): legitimate, the video loops, but more likely a
    typo in a timestamp (10:00:01 for 00:00:01) than hours of looping; None otherwise."""
    limit = max(_FAR_SECONDS, _FAR_TIMES * video_seconds)
    if cues[-1].end <= limit:
        return None
    cue = next(cue for cue in cues if cue.end > limit)
    video = f", far past the end of the video ({clock(video_seconds)}, looped to fill the time)" if video_seconds else ""
    return (f"the cue at line {cue.line} of {path} ends at {clock(cue.end)}{video}: the output will be at least "
            f"{clock(cues[-1].end)} long; a typo in the timestamp?")


def clock(seconds):
    """``seconds`` as H:MM:SS.mmm."""
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"
