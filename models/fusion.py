"""Inference-only speed-ups that keep the networks' results (to float rounding)."""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .conv import Conv2d, Conv2dTranspose


def fuse_for_inference(model, in_place=False):
    """``model`` (a copy, unless ``in_place``) with each BatchNorm folded into its convolution,
    in channels-last layout.

    About 1.5x faster on CPU for the generator; outputs change only by float rounding (~1e-6).
    The result is for inference only: its state dict no longer has the released layout.
    Inference folds the model it has just loaded in place: copying 36 M weights costs a second.
    """
    fused = (model if in_place else copy.deepcopy(model)).eval()
    for module in fused.modules():
        if isinstance(module, (Conv2d, Conv2dTranspose)) and len(module.conv_block) == 2:
            conv, norm = module.conv_block
            module.conv_block = nn.Sequential(fuse_conv_bn_eval(conv, norm, transpose=isinstance(module, Conv2dTranspose)))
    return fused.to(memory_format=torch.channels_last)
