"""Seeded random weights for the project's networks, saved as the released files are."""

from pathlib import Path

import torch


def seeded(model, seed=0, gain=1.0):
    """``model`` with every parameter and BatchNorm statistic drawn from a seeded generator.

    Running statistics are randomised too, so a test notices if they are not loaded. Weights
    are He-initialised times ``gain``: at 1 the deep residual stacks amplify float32 rounding
    to ~5e-4 in the generator's output (trained networks do not); 0.8 keeps it near 1e-6.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(1000)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * gain * (2.0 / fan_in) ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1 + (1.0 if "weight" in name else 0.0))
    return model.eval()


def save_released(model, path, module_prefix=True, legacy=True, wrapped=True, global_step=0):
    """Save like the released files: the 4-key dict (or a bare state dict), legacy serialization."""
    state = {("module." if module_prefix else "") + key: value for key, value in model.state_dict().items()}
    data = {"state_dict": state, "optimizer": None, "global_step": global_step, "global_epoch": 0} if wrapped else state
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    return Path(path)
