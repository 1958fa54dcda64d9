"""The expert lip-sync discriminator ("SyncNet_color") that Wav2Lip is trained against."""

import torch.nn.functional as F
from torch import nn

from .conv import Conv2d, residual_blocks
from .inputs import FACE_SIZE, extra_levels


class SyncNet_color(nn.Module):
    """Embeds 0.2 s of mel and the lower halves of 5 frames into one 512-d space.

    forward(mel (B,1,80,16), faces (B,15,48,96)) -> (audio, face) embeddings, each (B,512)
    and L2-normalised, so their dot product is the cosine similarity the expert was trained
    to push to 1 for in-sync pairs. ``faces`` stacks the 5 BGR lower halves on channels.
    A larger ``face_size`` (faces (B,15,face_size/2,face_size)) adds a stride-2 level (32
    channels and a residual block) after the first block per doubling; the audio tower is the same.
    """

    def __init__(self, face_size=FACE_SIZE):
        super().__init__()
        self.face_size = face_size
        extra = [block for _ in range(extra_levels(face_size)) for block in (Conv2d(32, 32, 3, 2, 1), *residual_blocks(32, 1))]
        self.face_encoder = nn.Sequential(
            Conv2d(15, 32, 7, 1, 3),  # face_size/2 x face_size
            *extra,  # halved, to 48x96
            Conv2d(32, 64, 5, (1, 2), 1), *residual_blocks(64, 2),  # 46x47
            Conv2d(64, 128, 3, 2, 1), *residual_blocks(128, 3),  # 23x24
            Conv2d(128, 256, 3, 2, 1), *residual_blocks(256, 2),  # 12x12
            Conv2d(256, 512, 3, 2, 1), *residual_blocks(512, 2),  # 6x6
            Conv2d(512, 512, 3, 2, 1),  # 3x3
            Conv2d(512, 512, 3, 1, 0),  # 1x1
            Conv2d(512, 512, 1, 1, 0),
        )
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), *residual_blocks(32, 2),  # 80x16
            Conv2d(32, 64, 3, (3, 1), 1), *residual_blocks(64, 2),  # 27x16
            Conv2d(64, 128, 3, 3, 1), *residual_blocks(128, 2),  # 9x6
            Conv2d(128, 256, 3, (3, 2), 1), *residual_blocks(256, 2),  # 3x3
            Conv2d(256, 512, 3, 1, 0),  # 1x1
            Conv2d(512, 512, 1, 1, 0),
        )

    def forward(self, audio_sequences, face_sequences):
        face_embedding = self.face_encoder(face_sequences).flatten(1)
        audio_embedding = self.audio_encoder(audio_sequences).flatten(1)
        return F.normalize(audio_embedding, p=2, dim=1), F.normalize(face_embedding, p=2, dim=1)
