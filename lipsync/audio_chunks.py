"""The speech as the generator hears it: its mel spectrogram and the chunk each output frame gets."""

import numpy as np

import audio
from errors import UserError
from models.inputs import MEL_FPS, MEL_STEP


def speech_mel(path):
    """The (80, frames) mel spectrogram of any file with an audio track, at 16 kHz."""
    mel = audio.melspectrogram(audio.load_wav(path, 16000)).astype(np.float32)
    if np.isnan(mel).any():
        raise UserError("the audio's mel spectrogram contains NaN (a TTS voice?): add a little noise and retry")
    return mel


def mel_chunk_starts(mel_frames, fps):
    """Start column of each mel chunk, as the reference cuts them: one per output frame."""
    if mel_frames < MEL_STEP:
        raise UserError(f"the audio is too short: {mel_frames} mel frames, at least {MEL_STEP} (0.2 s) needed")
    multiplier, starts = MEL_FPS / fps, []
    while True:
        start = int(len(starts) * multiplier)
        if start + MEL_STEP > mel_frames:
            starts.append(mel_frames - MEL_STEP)
            return starts
        starts.append(start)
