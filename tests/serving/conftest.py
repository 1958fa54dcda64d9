"""What the serving tests share: the media a server lip-syncs."""

import numpy as np
import pytest
from support.synthetic_weights import save_released, seeded

from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip
from server_process import SILENCE_SECONDS, SPEECH_SECONDS


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Seeded generator weights, a face video and speech with a pause (speech, then silence)."""
    d = tmp_path_factory.mktemp("serve_media")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    write_video(d / "face.mp4", face_frames(25))
    speech = np.concatenate([speech_like(SPEECH_SECONDS), np.zeros(int(SILENCE_SECONDS * 16000), np.float32)])
    write_media(d / "speech_then_silence.wav", speech[None], 16000, audio_codec="pcm_s16le")
    write_media(d / "speech.wav", speech_like(1.0)[None], 16000, audio_codec="pcm_s16le")
    return d
