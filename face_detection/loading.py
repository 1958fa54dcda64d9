"""One S3FD detector per process, and the fingerprint of the weights it was loaded from."""

import functools

import torch

from models.checkpoint import file_digest, file_version

from .detect import S3FDDetector, weights_file


def fingerprint(path=None):
    """The weights' content hash (None when the file is missing): detections cached with one
    set of weights are not reused with another."""
    weights = weights_file(path)
    return file_digest(weights) if weights.is_file() else None


def load_detector(device, weights_path=None, batch_size=None):
    """An S3FDDetector, reused while the device, weights file and batch size stay the same
    (test-set generation and scoring call this once per video)."""
    version = file_version(weights_file(weights_path))
    if version is None:
        return S3FDDetector(device, weights_path, batch_size)  # says the weights are missing
    return _load_detector(torch.device(device), weights_path, version, batch_size)


@functools.lru_cache(maxsize=1)
def _load_detector(device, weights_path, version, batch_size):
    return S3FDDetector(device, weights_path, batch_size)
