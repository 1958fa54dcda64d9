"""The S3FD network ("S3FD: Single Shot Scale-invariant Face Detector", Zhang et al. 2017).

Layer names are those of the released ``s3fd.pth``: a VGG-16 trunk with six detection heads
at strides 4 to 128.
"""

import torch
import torch.nn.functional as F
from torch import nn

HEAD_STRIDES = (4, 8, 16, 32, 64, 128)


class L2Norm(nn.Module):
    """Per-position L2 normalisation over channels, times a learned per-channel scale."""

    def __init__(self, channels, scale):
        super().__init__()
        self.eps = 1e-10
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        # In float32 even under autocast: a sum of squares over 512 channels overflows fp16.
        norm = x.float().pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return (x.float() / norm * self.weight.view(1, -1, 1, 1)).to(x.dtype)


class S3FD(nn.Module):
    """forward(images (N,3,H,W), mean-subtracted RGB) -> [cls1, loc1, ..., cls6, loc6].

    Each cls map has 2 channels (background, face) of logits, each loc map 4 box offsets.
    """

    def __init__(self):
        super().__init__()
        self.conv1_1 = nn.Conv2d(3, 64, 3, 1, 1)
        self.conv1_2 = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv2_1 = nn.Conv2d(64, 128, 3, 1, 1)
        self.conv2_2 = nn.Conv2d(128, 128, 3, 1, 1)
        self.conv3_1 = nn.Conv2d(128, 256, 3, 1, 1)
        self.conv3_2 = nn.Conv2d(256, 256, 3, 1, 1)
        self.conv3_3 = nn.Conv2d(256, 256, 3, 1, 1)
        self.conv4_1 = nn.Conv2d(256, 512, 3, 1, 1)
        self.conv4_2 = nn.Conv2d(512, 512, 3, 1, 1)
        self.conv4_3 = nn.Conv2d(512, 512, 3, 1, 1)
        self.conv5_1 = nn.Conv2d(512, 512, 3, 1, 1)
        self.conv5_2 = nn.Conv2d(512, 512, 3, 1, 1)
        self.conv5_3 = nn.Conv2d(512, 512, 3, 1, 1)
        self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, 1, 1, 0)
        self.conv6_1 = nn.Conv2d(1024, 256, 1, 1, 0)
        self.conv6_2 = nn.Conv2d(256, 512, 3, 2, 1)
        self.conv7_1 = nn.Conv2d(512, 128, 1, 1, 0)
        self.conv7_2 = nn.Conv2d(128, 256, 3, 2, 1)

        self.conv3_3_norm = L2Norm(256, scale=10)
        self.conv4_3_norm = L2Norm(512, scale=8)
        self.conv5_3_norm = L2Norm(512, scale=5)

        # The stride-4 head predicts 3 background logits (max-out against small false faces).
        self.conv3_3_norm_mbox_conf = nn.Conv2d(256, 4, 3, 1, 1)
        self.conv3_3_norm_mbox_loc = nn.Conv2d(256, 4, 3, 1, 1)
        self.conv4_3_norm_mbox_conf = nn.Conv2d(512, 2, 3, 1, 1)
        self.conv4_3_norm_mbox_loc = nn.Conv2d(512, 4, 3, 1, 1)
        self.conv5_3_norm_mbox_conf = nn.Conv2d(512, 2, 3, 1, 1)
        self.conv5_3_norm_mbox_loc = nn.Conv2d(512, 4, 3, 1, 1)
        self.fc7_mbox_conf = nn.Conv2d(1024, 2, 3, 1, 1)
        self.fc7_mbox_loc = nn.Conv2d(1024, 4, 3, 1, 1)
        self.conv6_2_mbox_conf = nn.Conv2d(512, 2, 3, 1, 1)
        self.conv6_2_mbox_loc = nn.Conv2d(512, 4, 3, 1, 1)
        self.conv7_2_mbox_conf = nn.Conv2d(256, 2, 3, 1, 1)
        self.conv7_2_mbox_loc = nn.Conv2d(256, 4, 3, 1, 1)

    def _stage(self, x, *convs):
        for conv in convs:
            x = F.relu(conv(x))
        return x

    def forward(self, x):
        h = F.max_pool2d(self._stage(x, self.conv1_1, self.conv1_2), 2, 2)
        h = F.max_pool2d(self._stage(h, self.conv2_1, self.conv2_2), 2, 2)
        f3_3 = self._stage(h, self.conv3_1, self.conv3_2, self.conv3_3)
        f4_3 = self._stage(F.max_pool2d(f3_3, 2, 2), self.conv4_1, self.conv4_2, self.conv4_3)
        f5_3 = self._stage(F.max_pool2d(f4_3, 2, 2), self.conv5_1, self.conv5_2, self.conv5_3)
        ffc7 = self._stage(F.max_pool2d(f5_3, 2, 2), self.fc6, self.fc7)
        f6_2 = self._stage(ffc7, self.conv6_1, self.conv6_2)
        f7_2 = self._stage(f6_2, self.conv7_1, self.conv7_2)

        f3_3, f4_3, f5_3 = self.conv3_3_norm(f3_3), self.conv4_3_norm(f4_3), self.conv5_3_norm(f5_3)
        cls1 = self.conv3_3_norm_mbox_conf(f3_3)
        background = torch.max(torch.max(cls1[:, 0:1], cls1[:, 1:2]), cls1[:, 2:3])
        return [
            torch.cat([background, cls1[:, 3:4]], dim=1), self.conv3_3_norm_mbox_loc(f3_3),
            self.conv4_3_norm_mbox_conf(f4_3), self.conv4_3_norm_mbox_loc(f4_3),
            self.conv5_3_norm_mbox_conf(f5_3), self.conv5_3_norm_mbox_loc(f5_3),
            self.fc7_mbox_conf(ffc7), self.fc7_mbox_loc(ffc7),
            self.conv6_2_mbox_conf(f6_2), self.conv6_2_mbox_loc(f6_2),
            self.conv7_2_mbox_conf(f7_2), self.conv7_2_mbox_loc(f7_2),
        ]
