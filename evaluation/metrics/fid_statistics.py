"""FID between the frames of generated and real videos, compatible with pytorch-fid
(``evaluation/fid.py`` is the script).

REAL and GENERATED are each a video, an image, a folder of videos and/or images, or a .npz of
statistics saved with --save_stats (pytorch-fid's format: mu, sigma). Every frame is read
losslessly as RGB, resized to 299 x 299 and embedded by pytorch-fid's InceptionV3; the
Fréchet distance between the two Gaussians of pool features is the FID. Statistics are
accumulated batch by batch, so memory does not grow with the number of frames.
"""

from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from evaluation.metrics.inception import FEATURES, FIDInceptionV3
from media.containers import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_image,
    probe_video,
    read_frames,
    read_image,
    visible,
)
from models.checkpoint import load_weights
from system.atomic_write import atomic_output
from system.errors import UserError

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def load_inception(path, device="cpu"):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"InceptionV3 weights not found at {path}: download pytorch-fid's FID weights "
                        f"({WEIGHTS_NAME}, from its GitHub releases) and pass their path with "
                        "--inception_checkpoint_path")
    model = FIDInceptionV3()
    load_weights(model, path, device)
    return model.eval()


class RunningStats:
    """Mean and covariance of feature rows added in batches (Chan et al.'s pairwise update, in float64)."""

    def __init__(self, dims=FEATURES):
        self.count, self.mean, self.scatter = 0, np.zeros(dims), np.zeros((dims, dims))

    def add(self, rows):
        rows = np.asarray(rows, np.float64)
        batch = RunningStats(rows.shape[1])
        batch.count, batch.mean = len(rows), rows.mean(axis=0)
        centred = rows - batch.mean
        batch.scatter = centred.T @ centred
        self.merge(batch)

    def merge(self, other):
        """Take in ``other``'s rows (a batch, or another shard's statistics)."""
        if other.count == 0:
            return
        count = self.count + other.count
        delta = other.mean - self.mean
        self.scatter += other.scatter + np.outer(delta, delta) * (self.count * other.count / count)
        self.mean += delta * (other.count / count)
        self.count = count

    def arrays(self, prefix):
        """What a shard saves (np.savez) for a merge: count, mean, scatter."""
        return {f"{prefix}count": np.int64(self.count), f"{prefix}mean": self.mean, f"{prefix}scatter": self.scatter}

    @classmethod
    def from_arrays(cls, saved, prefix):
        stats = cls(len(saved[f"{prefix}mean"]))
        stats.count, stats.mean, stats.scatter = int(saved[f"{prefix}count"]), saved[f"{prefix}mean"], saved[f"{prefix}scatter"]
        return stats

    def covariance(self):
        if self.count < 2:
            raise UserError(f"FID needs at least 2 frames on each side, found {self.count}")
        return self.scatter / (self.count - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    The trace of the matrix square root is taken from the eigenvalues of the symmetric
    sigma1^(1/2) sigma2 sigma1^(1/2), which has the same spectrum as sigma1 sigma2: no complex
    parts and no failing sqrtm on the singular covariances of small frame sets.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = root @ sigma2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def media_files(path):
    """The videos and images a path names: itself, or a folder's (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} not found")
    files = visible(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS),
                    path)  # not hidden files: unfinished temporaries of videos still being written
    if not files:
        raise UserError(f"no videos or images in {path}")
    return files


def rgb_frames(files):
    """Every frame of every file, as RGB uint8."""
    for path in files:
        frames = [read_image(path)] if is_image(path) else read_frames(path)
        for frame in frames:
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def frame_statistics(path, model, device, batch_size=50, progress=True):
    """(mu, sigma, frames) of the pool features of every frame under ``path``, or of a saved .npz."""
    if str(path).endswith(".npz"):
        with np.load(path) as saved:
            return saved["mu"], saved["sigma"], None
    stats = running_statistics(media_files(path), model, device, batch_size, progress, Path(path).name)
    return stats.mean, stats.covariance(), stats.count


@torch.no_grad()
def running_statistics(files, model, device, batch_size=50, progress=True, name=""):
    """The RunningStats of the pool features of every frame of ``files``, with a bar that
    counts the files (a single video: its frames) against their total."""
    stats, batch = RunningStats(), []

    def flush():
        images = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).float() / 255
        stats.add(model(images).cpu().numpy())
        batch.clear()

    by_frame = len(files) == 1 and not is_image(files[0])
    total = (probe_video(files[0]).frame_count if by_frame else len(files)) if progress else None
    with tqdm(total=total, desc=f"FID {name}", unit="frame" if by_frame else "file", disable=not progress) as bar:
        for path in files:
            for frame in rgb_frames([path]):
                if batch and (len(batch) == batch_size or frame.shape != batch[0].shape):
                    flush()
                batch.append(frame)
                bar.update(by_frame)
            if not by_frame:
                bar.set_postfix(frames=stats.count + len(batch), refresh=False)
                bar.update()
        if batch:
            flush()
    return stats


def save_arrays(path, compressed=False, **arrays):
    """``arrays`` in a .npz at ``path``, written whole or not at all."""
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **arrays)


def merged_distance(parts):
    """FID from the statistics the shards of a run saved (``{side}count/mean/scatter`` per file)."""
    sides = []
    for side in ("real_", "generated_"):
        stats = RunningStats()
        for part in parts:
            with np.load(part) as saved:
                stats.merge(RunningStats.from_arrays(saved, side))
        sides.append((stats.mean, stats.covariance()))
    return frechet_distance(*sides[0], *sides[1])
