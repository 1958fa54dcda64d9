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


INFONCE_TEMPERATURE = 0.1  # cosines of the expert's non-negative unit embeddings lie in [0, 1]: logits in [0, 10]


def infonce_loss(audio_embedding, face_embedding, shifted_embedding, temperature=INFONCE_TEMPERATURE):
    """The expert's contrastive loss (``--hparams expert_loss=infonce``): each audio window
    picks its own in-sync face window out of every face window of the batch (the other clips',
    and each clip's window shifted off its audio), cross-entropy on cosine / temperature, in
    both directions; plus the reference's BCE on each clip's in-sync and shifted pair, so that
    the cosine stays calibrated at 0.5 and the expert serves the generator's sync loss unchanged."""
    audio, faces, shifted = (F.normalize(x.float(), dim=1) for x in (audio_embedding, face_embedding, shifted_embedding))
    targets = torch.arange(len(audio), device=audio.device)
    logits = audio @ torch.cat([faces, shifted]).T / temperature  # (B, 2B): column i is the in-sync window
    contrastive = (F.cross_entropy(logits, targets) + F.cross_entropy(logits[:, :len(audio)].T, targets)) / 2
    labels = torch.cat([torch.ones(len(audio), 1), torch.zeros(len(audio), 1)]).to(audio.device)
    return contrastive + cosine_loss(torch.cat([audio, audio]), torch.cat([faces, shifted]), labels)


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
