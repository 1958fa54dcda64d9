"""What the inference tests share: seeded checkpoints and media (the ``assets`` fixture), a stand-in
detector (``detector``) and helpers that run the pipeline into a list of frames."""

import numpy as np
import pytest
import torch
from support.bright_box_detector import BrightBoxDetector
from support.synthetic_weights import save_released, seeded

import face_detection.loading
import inference
from lipsync import Options, lip_sync
from lipsync.audio_chunks import mel_chunk_starts
from media import containers
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import SyncNet_color, Wav2Lip
from system.cli import run

CONSTANT_BGR = (50, 100, 200)
BOX = (20, 90, 30, 100)  # top bottom left right


def logit(p):
    return float(np.log(p / (1 - p)))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    constant = seeded(Wav2Lip(), 0)
    with torch.no_grad():  # output = sigmoid(bias): x 255 truncates to CONSTANT_BGR
        constant.output_block[1].weight.zero_()
        constant.output_block[1].bias.copy_(torch.tensor([logit((v + 0.5) / 255) for v in CONSTANT_BGR]))
    save_released(constant, d / "constant.pth", module_prefix=False)
    audio_only = seeded(Wav2Lip(), 3)
    with torch.no_grad():  # the face encoder sees nothing: the output depends on the audio alone
        audio_only.face_encoder_blocks[0][0].conv_block[0].weight.zero_()
    save_released(audio_only, d / "audio_only.pth")
    save_released(seeded(SyncNet_color(), 1), d / "sync.pth")
    for seconds in (0.6, 1.0, 1.4):
        write_media(d / f"speech{seconds}.wav", speech_like(seconds)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face12.mp4", face_frames(12))
    write_video(d / "face30.mp4", face_frames(30))
    write_video(d / "gaps.mp4", face_frames(30, without_face={5, *range(12, 26)}))
    return d


class FrameList(list):
    def write(self, frame):
        self.append(frame.copy())


@pytest.fixture
def detector(monkeypatch):
    BrightBoxDetector.calls = []
    monkeypatch.setattr(face_detection.loading, "S3FDDetector", BrightBoxDetector)
    return BrightBoxDetector


def synced(assets, checkpoint="constant.pth", face="face12.mp4", seconds=0.6, **options):
    sink = FrameList()
    summary = lip_sync(Options(str(assets / checkpoint), str(assets / face), str(assets / f"speech{seconds}.wav"),
                               progress=False, **options), sink=sink)
    return sink, summary


def decoded(path):
    return list(containers.read_frames(path))


def chunk_count(seconds, fps=25.0):
    return len(mel_chunk_starts(1 + int(seconds * 16000) // 200, fps))


def outside(frame, box=BOX):
    y1, y2, x1, x2 = box
    rest = frame.copy()
    rest[y1:y2, x1:x2] = 0
    return rest


def assert_close(got, expected, max_share=2e-3):
    """Equal up to float rounding: no pixel off by more than 1, and very few off at all."""
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() <= max_share


def cli(argv, capsys):
    """inference.py's exit status and captured output for ``argv``, run as its command line runs."""
    code = run(inference.main, [*map(str, argv), "--quiet"])
    return code, capsys.readouterr()
