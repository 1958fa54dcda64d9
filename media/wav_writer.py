"""A mono 32-bit float WAV file written piece by piece, its length unknown until it ends."""

import contextlib

import av
import numpy as np


@contextlib.contextmanager
def float_wav(path, sample_rate):
    """Yield ``write(samples)``, which appends mono float32 samples to a WAV file at ``path``;
    the file is finished when the block ends. FFmpeg's muxer fills in the sizes at the end and
    turns the file into RF64 past RIFF's 4 GB (about 13 hours at 22,050 Hz)."""
    with av.open(str(path), "w", format="wav", options={"rf64": "auto"}) as container:
        stream = container.add_stream("pcm_f32le", rate=sample_rate, layout="mono")
        written = 0

        def write(samples):
            nonlocal written
            frame = av.AudioFrame.from_ndarray(np.asarray(samples, np.float32)[np.newaxis], format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = sample_rate, written
            container.mux(stream.encode(frame))
            written += frame.samples

        yield write
        container.mux(stream.encode(None))
