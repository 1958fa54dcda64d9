"""The Wav2Lip generator and its visual-quality discriminator (Prajwal et al., ACM MM 2020)."""

import torch
from torch import nn

from .conv import Conv2d, Conv2dTranspose, nonorm_Conv2d, residual_blocks
from .inputs import FACE_SIZE, extra_levels


def frames_to_batch(sequences, time_dim=2):
    """(B, C, T, H, W) -> (T*B, C, H, W), time-major, as the reference stacks windows.

    ``time_dim=1`` does the same for mel windows, (B, T, 1, 80, 16) -> (T*B, 1, 80, 16).
    """
    return torch.cat(sequences.unbind(time_dim), dim=0)


def batch_to_frames(images, batch_size):
    """Inverse of frames_to_batch: (T*B, C, H, W) -> (B, C, T, H, W)."""
    return torch.stack(torch.split(images, batch_size, dim=0), dim=2)


class Wav2Lip(nn.Module):
    """Generator: a face (lower half masked) + a reference face + 0.2 s of mel -> a talking face.

    forward(mel (B,1,80,16), faces (B,6,96,96)) -> (B,3,96,96) in [0, 1]; or the training form
    forward(mel (B,T,1,80,16), faces (B,6,T,96,96)) -> (B,3,T,96,96). Channels of ``faces`` are
    [masked target, reference], each BGR scaled to [0, 1].

    ``face_size`` 192 or 384 (models.inputs.FACE_SIZES) makes faces of that size: each doubling
    adds a stride-2 encoder level (16 channels) after the first block and a transposed-conv
    decoder level (32 channels) with its skip before the output block; the rest, the audio
    encoder included, is the released network's.
    """

    def __init__(self, face_size=FACE_SIZE):
        super().__init__()
        self.face_size = face_size
        extra = extra_levels(face_size)
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, 16, 7, 1, 3)),  # face_size
            *(nn.Sequential(Conv2d(16, 16, 3, 2, 1), *residual_blocks(16, 1)) for _ in range(extra)),  # halved, to 96
            nn.Sequential(Conv2d(16, 32, 3, 2, 1), *residual_blocks(32, 2)),  # 48x48
            nn.Sequential(Conv2d(32, 64, 3, 2, 1), *residual_blocks(64, 3)),  # 24x24
            nn.Sequential(Conv2d(64, 128, 3, 2, 1), *residual_blocks(128, 2)),  # 12x12
            nn.Sequential(Conv2d(128, 256, 3, 2, 1), *residual_blocks(256, 2)),  # 6x6
            nn.Sequential(Conv2d(256, 512, 3, 2, 1), *residual_blocks(512, 1)),  # 3x3
            nn.Sequential(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),  # 1x1
        ])
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), *residual_blocks(32, 2),  # 80x16
            Conv2d(32, 64, 3, (3, 1), 1), *residual_blocks(64, 2),  # 27x16
            Conv2d(64, 128, 3, 3, 1), *residual_blocks(128, 2),  # 9x6
            Conv2d(128, 256, 3, (3, 2), 1), *residual_blocks(256, 1),  # 3x3
            Conv2d(256, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0),  # 1x1
        )
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(512, 512, 1, 1, 0)),  # 1x1
            nn.Sequential(Conv2dTranspose(1024, 512, 3, 1, 0), *residual_blocks(512, 1)),  # 3x3
            nn.Sequential(Conv2dTranspose(1024, 512, 3, 2, 1, output_padding=1), *residual_blocks(512, 2)),  # 6x6
            nn.Sequential(Conv2dTranspose(768, 384, 3, 2, 1, output_padding=1), *residual_blocks(384, 2)),  # 12x12
            nn.Sequential(Conv2dTranspose(512, 256, 3, 2, 1, output_padding=1), *residual_blocks(256, 2)),  # 24x24
            nn.Sequential(Conv2dTranspose(320, 128, 3, 2, 1, output_padding=1), *residual_blocks(128, 2)),  # 48x48
            nn.Sequential(Conv2dTranspose(160, 64, 3, 2, 1, output_padding=1), *residual_blocks(64, 2)),  # 96x96
            *(nn.Sequential(Conv2dTranspose(80 if level == 0 else 48, 32, 3, 2, 1, output_padding=1),
                            *residual_blocks(32, 1)) for level in range(extra)),  # doubled, to face_size
        ])
        width = 48 if extra else 80  # the last decoder level's channels and its skip's (16)
        self.output_block = nn.Sequential(Conv2d(width, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, audio_sequences, face_sequences):
        batch_size = audio_sequences.size(0)
        sequence_form = face_sequences.dim() > 4
        if sequence_form:
            audio_sequences = frames_to_batch(audio_sequences, time_dim=1)
            face_sequences = frames_to_batch(face_sequences)

        skips = []
        x = face_sequences
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)

        x = self.audio_encoder(audio_sequences)  # (N, 512, 1, 1)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)  # U-Net skip from the encoder
        x = self.output_block(x)

        return batch_to_frames(x, batch_size) if sequence_form else x


class Wav2Lip_disc_qual(nn.Module):
    """Visual-quality discriminator: P(real) for the lower half of each face of a window.

    forward(faces (B,3,T,96,96)) -> (T*B, 1), time-major like ``frames_to_batch``. A larger
    ``face_size`` adds a stride-2 level (32 channels) after the first block per doubling.
    """

    def __init__(self, face_size=FACE_SIZE):
        super().__init__()
        self.face_size = face_size
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(nonorm_Conv2d(3, 32, 7, 1, 3)),  # face_size/2 x face_size
            *(nn.Sequential(nonorm_Conv2d(32, 32, 5, 2, 2), nonorm_Conv2d(32, 32, 5, 1, 2))
              for _ in range(extra_levels(face_size))),  # halved, to 48x96
            nn.Sequential(nonorm_Conv2d(32, 64, 5, (1, 2), 2), nonorm_Conv2d(64, 64, 5, 1, 2)),  # 48x48
            nn.Sequential(nonorm_Conv2d(64, 128, 5, 2, 2), nonorm_Conv2d(128, 128, 5, 1, 2)),  # 24x24
            nn.Sequential(nonorm_Conv2d(128, 256, 5, 2, 2), nonorm_Conv2d(256, 256, 5, 1, 2)),  # 12x12
            nn.Sequential(nonorm_Conv2d(256, 512, 3, 2, 1), nonorm_Conv2d(512, 512, 3, 1, 1)),  # 6x6
            nn.Sequential(nonorm_Conv2d(512, 512, 3, 2, 1), nonorm_Conv2d(512, 512, 3, 1, 1)),  # 3x3
            nn.Sequential(nonorm_Conv2d(512, 512, 3, 1, 0), nonorm_Conv2d(512, 512, 1, 1, 0)),  # 1x1
        ])
        self.binary_pred = nn.Sequential(nn.Conv2d(512, 1, 1, 1, 0), nn.Sigmoid())

    @staticmethod
    def get_lower_half(face_sequences):
        return face_sequences[:, :, face_sequences.size(2) // 2:]

    @staticmethod
    def to_2d(face_sequences):
        return frames_to_batch(face_sequences)

    def forward(self, face_sequences):
        x = self.get_lower_half(self.to_2d(face_sequences))
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).view(len(x), -1)
