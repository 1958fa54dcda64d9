"""Which device a run uses: the --device flag's meaning, under torchrun too."""

import os

from system.errors import UserError


def pick_device(name):
    """The torch.device a --device flag names; "auto" is CUDA, else Apple's MPS, else the CPU.

    Under torchrun, "cuda" (or "auto" choosing it) is the process's own GPU, cuda:LOCAL_RANK.
    """
    import torch  # here, so that scripts that never touch a network start without it

    if name == "auto":
        if torch.cuda.is_available():
            return _local_gpu(torch.device("cuda"))
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available to PyTorch here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple's Metal (MPS) is not available to PyTorch here")
    return _local_gpu(device)


def _local_gpu(device):
    local_rank = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        return type(device)("cuda", int(local_rank))
    return device
