"""The convolution blocks the Wav2Lip networks are built from.

Attribute names (``conv_block`` holding the convolution and its BatchNorm) are those of the
released checkpoints' state-dict keys.
"""

from torch import nn


class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU, optionally with an identity shortcut added before the ReLU."""

    def __init__(self, cin, cout, kernel_size, stride, padding, residual=False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class nonorm_Conv2d(nn.Module):
    """Conv + LeakyReLU(0.01), no normalisation: the visual-quality discriminator's block."""

    def __init__(self, cin, cout, kernel_size, stride, padding):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x):
        return self.act(self.conv_block(x))


class Conv2dTranspose(nn.Module):
    """Transposed conv + BatchNorm + ReLU: the generator's upsampling block."""

    def __init__(self, cin, cout, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv_block(x))


def residual_blocks(channels, count):
    """``count`` shape-preserving 3x3 Conv2d blocks with identity shortcuts."""
    return [Conv2d(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]
