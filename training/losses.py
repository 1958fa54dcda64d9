"""The losses the trainers optimise, each defined once, as the reference defines them."""

import math

import torch
import torch.nn.functional as F


def _bce(probability, target):
    """Binary cross-entropy; NaN where ``probability`` is not finite (training diverging), which
    the loop then reports, where torch raises on the CPU and asserts on a GPU."""
    if not bool(torch.isfinite(probability).all()):
        return probability.mean() * math.nan
    return F.binary_cross_entropy(probability, target)


def cosine_loss(audio_embedding, face_embedding, label):
    """The expert's loss: BCE of the cosine similarity of the (L2-normalised, non-negative)
    embeddings against ``label`` (1: in sync)."""
    similarity = F.cosine_similarity(audio_embedding.float(), face_embedding.float())
    return _bce(similarity.unsqueeze(1), label.float())


def sync_accuracy(audio_embedding, face_embedding, label):
    """The share of pairs the expert classifies right at cosine 0.5 (in sync above it): the
    figure LatentSync reports for its SyncNet; 0.5 is a coin toss on half-and-half pairs."""
    similarity = F.cosine_similarity(audio_embedding.float(), face_embedding.float())
    return ((similarity > 0.5) == label.flatten().bool()).float().mean()


def realness_loss(prediction, real):
    """The visual-quality discriminator's loss for its P(real) ``prediction``: BCE against
    all real (``real=True``) or all fake; also the generator's adversarial loss (real=True)."""
    prediction = prediction.float()
    return _bce(prediction, torch.full_like(prediction, float(real)))


def generator_loss(losses, syncnet_wt, disc_wt=0.0):
    """What the generator is trained on, in both trainers:

        syncnet_wt * sync + disc_wt * adversarial + (1 - syncnet_wt - disc_wt) * L1

    ``losses`` holds "l1" and, when their weight is above 0, "sync" and "perceptual" (the
    adversarial loss); without the GAN disc_wt is 0 and this is the plain trainer's sum.
    """
    total = syncnet_wt * losses.get("sync", 0.0)
    if "perceptual" in losses:
        total = total + disc_wt * losses["perceptual"]
    return total + (1 - syncnet_wt - disc_wt) * losses["l1"]
