"""One voice per face (several --audio): the output's sound is the voices played together.

Each voice is decoded to mono at the highest of their sample rates (an AAC rate: others
become 48 kHz), the voices are added sample by sample (a shorter one goes on as silence)
and clipped to full scale, a block at a time: memory does not grow with their length.
"""

import numpy as np

import audio
from media.containers import AAC_RATES
from media.wav_writer import float_wav

BLOCK = 1 << 18  # samples mixed at once


def mix_voices(paths, path):
    """The voices of ``paths`` (any media files with audio) mixed into a mono float WAV at ``path``;
    returns its sample rate."""
    rates = [audio.native_sample_rate(voice) for voice in paths]
    rate = max(rate if rate in AAC_RATES else 48000 for rate in rates)
    readers = [audio.BlockReader(audio.mono_blocks(voice, rate, clip=True)) for voice in paths]
    with float_wav(path, rate) as write:
        while True:
            pieces = [reader.take(BLOCK) for reader in readers]
            longest = max(len(piece) for piece in pieces)
            if not longest:
                return rate
            mixed = np.zeros(longest, np.float32)
            for piece in pieces:
                mixed[:len(piece)] += piece
            write(np.clip(mixed, -1, 1))
