"""The speech as the generator hears it: its mel spectrogram and the chunk each output frame gets."""

import contextlib
import itertools
import sys

import numpy as np

import audio
from hparams import hparams
from models.inputs import MEL_STEP
from system.errors import UserError


class Speech:
    """The speech track of ``path``, checked in one pass before any work, then read again as
    the output frames reach it: memory does not grow with its length.

        speech = Speech(path)      NaN or infinite samples refused, samples beyond full scale counted
        speech.mel_frames          the width of its (num_mels, frames) mel spectrogram, at hparams.sample_rate
        speech.pad_to(samples)     silence after it, up to that length (a voice shorter than another)
        speech.chunks(starts)      the (num_mels, MEL_STEP) mel chunk at each start, in order

    Samples beyond full scale are clipped to [-1, 1], as a player plays them (and as the AAC
    encoder must get them), with one warning line saying how many.
    """

    def __init__(self, path):
        self.path = path
        found = audio.scan(path)
        self.clipped = found.beyond_full_scale > 0
        if self.clipped:
            print(f"warning: {path}: {found.beyond_full_scale:,} of {found.samples:,} audio samples lie beyond "
                  "full scale; clipped to [-1, 1]", file=sys.stderr)
        self.samples = found.length_at(hparams.sample_rate)
        self.mel_frames = audio.mel_columns(self.samples)
        self._silence = 0

    def pad_to(self, samples):
        """Go on with silence up to ``samples`` (at hparams.sample_rate), as if the file held it."""
        self._silence = max(0, samples - self.samples)
        self.mel_frames = audio.mel_columns(self.samples + self._silence)

    def chunk_starts(self, fps):
        return mel_chunk_starts(self.mel_frames, fps)

    def chunks(self, starts):
        """The mel chunk at each of ``starts`` (never decreasing), its mel computed a piece at a
        time as the starts reach it; only the pieces a chunk spans are held."""
        blocks = audio.mono_blocks(self.path, hparams.sample_rate, clip=self.clipped)
        pieces = audio.mel_pieces(itertools.chain(blocks, _silence(self._silence)))
        with contextlib.closing(pieces):
            columns, first = np.zeros((hparams.num_mels, 0), np.float32), 0  # mel columns from column ``first`` on
            for start in starts:
                while start + MEL_STEP > first + columns.shape[1]:
                    dropped = min(start - first, columns.shape[1])
                    columns = np.concatenate([columns[:, dropped:], next(pieces).astype(np.float32)], axis=1)
                    first += dropped
                yield columns[:, start - first:start - first + MEL_STEP]


def _silence(samples, block=1 << 18):
    while samples > 0:
        yield np.zeros(min(samples, block), np.float32)
        samples -= block


def mel_chunk_starts(mel_frames, fps):
    """Start column of each mel chunk, as the reference cuts them: one per output frame."""
    if mel_frames < MEL_STEP:
        raise UserError(f"the audio is too short: {mel_frames} mel frames, at least {MEL_STEP} "
                        f"({MEL_STEP / audio.mel_fps():g} s) needed")
    multiplier, starts = audio.mel_fps() / fps, []
    while True:
        start = int(len(starts) * multiplier)
        if start + MEL_STEP > mel_frames:
            starts.append(mel_frames - MEL_STEP)
            return starts
        starts.append(start)
