"""The new speech over the original soundtrack (muted, or ducked while the speech plays),
made and written in pieces: memory stays the same whatever the track's length."""

import numpy as np

from audio import BlockReader

BLOCK = 1 << 20  # samples a piece of the track holds at most (4 MB of float32)


class Mix:
    """The track, passed to ``write`` piece by piece as speech is added in time order: a piece
    goes once nothing added later can reach it (a speech's duck ramp starts before it).
    ``original``: the soundtrack to duck by ``duck_db`` under the speech, as blocks of samples
    of any length (cut or padded with silence to the track's length), or None for speech alone."""

    def __init__(self, write, sample_rate, original=None, duck_db=0.0, ramp=0.05):
        self._write, self._rate, self._duck_db, self._ramp = write, sample_rate, duck_db, ramp
        self._original = None if original is None else BlockReader(original)
        self._pieces = []  # (first sample, samples) of speech not wholly written yet
        self._spans = []  # (start, end) seconds of that speech, as ``ducked`` takes them
        self._written = self._end = 0

    @property
    def sample_rate(self):
        return self._rate

    def add(self, start, samples):
        """Speech ``samples`` from ``start`` seconds, which is no earlier than the last added's start."""
        offset = round(start * self._rate)
        span = (start, start + len(samples) / self._rate)
        reach = min(offset, ramped(*span, self._rate, self._ramp)[0])
        if reach < self._written:
            raise ValueError(f"speech at {start:.3f} s added after the track was written to {self._written} samples")
        self._flush(reach)
        self._pieces.append((offset, samples))
        self._spans.append(span)
        self._end = max(self._end, offset + len(samples))

    def finish(self, until=0.0):
        """Write the rest: up to the end of the speech or to ``until`` seconds, whichever is later;
        returns the track's length in samples."""
        self._flush(max(self._end, round(until * self._rate)))
        return self._written

    def _flush(self, stop):
        while self._written < stop:
            first, last = self._written, min(stop, self._written + BLOCK)
            self._write(self._piece(first, last))
            self._written = last
            self._pieces = [(offset, s) for offset, s in self._pieces if offset + len(s) > last]
            self._spans = [span for span in self._spans if ramped(*span, self._rate, self._ramp)[1] > last]

    def _piece(self, first, last):
        """Samples ``first`` to ``last`` of the track."""
        speech = np.zeros(last - first, np.float32)
        for offset, samples in self._pieces:  # added, as into a silent track: speech may overlap by a sample
            begin, end = max(first, offset), min(last, offset + len(samples))
            if begin < end:
                speech[begin - first:end - first] += samples[begin - offset:end - offset]
        if self._original is None:
            return speech
        original = self._original.take(last - first)
        return ducked(original, speech, self._spans, self._rate, self._duck_db, first, self._ramp)


def ramped(start, end, sample_rate, ramp):
    """The samples [first, last) that speech from ``start`` to ``end`` seconds ducks, ramps included."""
    return max(0, int((start - ramp) * sample_rate)), int(np.ceil((end + ramp) * sample_rate)) + 1


def ducked(original, speech, active, sample_rate, duck_db, first=0, ramp=0.05):
    """``speech`` plus ``original`` (padded with silence to its length), both starting at sample
    ``first`` of the track, the original lowered by ``duck_db`` during each (start, end) second
    interval of ``active``: fully from the interval's start to its end, with linear ramps of
    ``ramp`` seconds outside it."""
    last = first + len(speech)
    original = np.pad(original, (0, len(speech) - len(original)))
    amount = np.zeros(len(speech), np.float32)  # 0: full level, 1: fully ducked
    for start, end in active:
        begin, stop = ramped(start, end, sample_rate, ramp)
        begin, stop = max(first, begin), min(last, stop)
        if begin >= stop:
            continue
        times = np.arange(begin, stop) / sample_rate
        shape = np.interp(times, [start - ramp, start, end, end + ramp], [0, 1, 1, 0])
        amount[begin - first:stop - first] = np.maximum(amount[begin - first:stop - first], shape)
    gain = 1 - (1 - 10 ** (-duck_db / 20)) * amount
    return np.clip(original * gain + speech, -1, 1).astype(np.float32)
