"""The SyncNet of Chung & Zisserman ("Out of time", 2016) that scores lip sync as LSE-D / LSE-C.

Laid out exactly as the released ``syncnet_v2.model`` (a bare state dict, 102 entries) stores
it, so the file loads with ``strict=True``. This is not the expert of ``models.syncnet``:
it sees 13 MFCCs x 20 steps (0.2 s) and 5 whole BGR frames of 224 x 224.
"""

from torch import nn

from models.checkpoint import load_weights

EMBEDDING = 1024


def _conv_bn_relu(conv, channels, norm=nn.BatchNorm2d):
    return [conv, norm(channels), nn.ReLU(inplace=True)]


class S(nn.Module):
    """forward_aud(mfcc (B,1,13,20)) and forward_lip(frames (B,3,5,224,224)) -> (B,1024) each."""

    def __init__(self):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(nn.Conv2d(1, 64, 3, padding=1), 64),
            nn.MaxPool2d(1, 1),
            *_conv_bn_relu(nn.Conv2d(64, 192, 3, padding=1), 192),
            nn.MaxPool2d(3, (1, 2)),
            *_conv_bn_relu(nn.Conv2d(192, 384, 3, padding=1), 384),
            *_conv_bn_relu(nn.Conv2d(384, 256, 3, padding=1), 256),
            *_conv_bn_relu(nn.Conv2d(256, 256, 3, padding=1), 256),
            nn.MaxPool2d(3, 2),
            *_conv_bn_relu(nn.Conv2d(256, 512, (5, 4)), 512),
        )
        self.netfcaud = _head()
        self.netfclip = _head()
        bn3d = nn.BatchNorm3d
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn3d),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn_relu(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, bn3d),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3d),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3d),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3d),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn_relu(nn.Conv3d(256, 512, (1, 6, 6)), 512, bn3d),
        )

    def forward_aud(self, mfcc):
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames):
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def _head():
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, EMBEDDING))


def load_syncnet(path, device="cpu"):
    """``syncnet_v2.model`` loaded strictly into S, in eval mode on ``device``."""
    model = S()
    load_weights(model, path, device)
    return model.eval()
