"""What each trainer optimises: the expert SyncNet, Wav2Lip, and Wav2Lip with the visual-quality GAN.

An objective owns its networks and optimisers and knows one training step, one evaluation
step and what an evaluation changes (the ``syncnet_wt`` switch); ``training.train`` runs it.
Losses are the reference's (FACTS §6); forward passes run under the session's mixed
precision, losses in float32.
"""

import torch
import torch.nn.functional as F

import training
from checkpoint import load_weights
from hparams import hparams
from lrs2_dataset import SYNCNET_T, ExpertSamples, GeneratorSamples
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual

SYNC_LOSS_THRESHOLD = 0.75  # evaluation sync loss below which the expert's weight is raised


def cosine_loss(audio_embedding, face_embedding, label):
    """BCE of the cosine similarity of the (L2-normalised, non-negative) embeddings."""
    similarity = F.cosine_similarity(audio_embedding.float(), face_embedding.float())
    return F.binary_cross_entropy(similarity.unsqueeze(1), label.float())


def lower_halves(faces):
    """(B, 3, T, H, W) -> (B, 3T, H/2, W): the lower halves of the frames stacked on
    channels, as the expert sees them."""
    faces = faces[:, :, :, faces.size(3) // 2:]
    return torch.cat([faces[:, :, t] for t in range(SYNCNET_T)], dim=1)


class Objective:
    """What the three objectives share: the session, the starting step and the train/eval switch."""

    evaluate_first_step = False
    prefixes = ("",)  # the checkpoint name prefix of each network trained (see networks())

    def __init__(self, session, args):
        self.session = session
        self.global_step = self.global_epoch = 0
        # --resume: the newest step that every network has a checkpoint of.
        self.resume_from = training.resume_paths(args.checkpoint_dir, self.prefixes) if args.resume else {}

    def resumable(self, model, lr, path, prefix="", betas=(0.9, 0.999)):
        """``model`` on the session's device with its Adam optimiser, both resumed from ``path``
        or, with --resume, the newest complete step; returns (model wrapped for DDP, optimiser,
        checkpoint dict)."""
        model.to(self.session.device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas)
        state = training.restore(self.session, model, optimizer, path if path is not None else self.resume_from.get(prefix))
        return self.session.wrap(model), optimizer, state

    def start_from(self, state):
        if state:
            self.global_step, self.global_epoch = int(state.get("global_step", 0)), int(state.get("global_epoch", 0))

    def trained(self):
        return [model for _, model, _ in self.networks()]

    def set_train(self, mode):
        for model in self.trained():
            model.train(mode)

    def checkpoint_extras(self):
        return {}

    def scalars(self):
        return {}

    def status(self):
        return ""

    def after_evaluation(self, losses):
        pass

    def write_samples(self, session, step):
        pass


class ExpertObjective(Objective):
    """The expert lip-sync discriminator (color_syncnet_train.py)."""

    name = "expert SyncNet"
    dataset_class = ExpertSamples
    eval_batches = 1400

    def __init__(self, session, args):
        super().__init__(session, args)
        self.batch_size = hparams.syncnet_batch_size
        self.checkpoint_interval = hparams.syncnet_checkpoint_interval
        self.eval_interval = hparams.syncnet_eval_interval
        self.model, self.optimizer, state = self.resumable(SyncNet_color(), hparams.syncnet_lr, args.checkpoint_path)
        self.start_from(state)

    def networks(self):
        return [("", self.model, self.optimizer)]

    def train_step(self, batch):
        faces, mel, label = batch
        self.optimizer.zero_grad(set_to_none=True)
        with self.session.autocast():
            audio_embedding, face_embedding = self.model(mel, faces)
        loss = cosine_loss(audio_embedding, face_embedding, label)
        self.session.backward(loss)
        self.session.step(self.optimizer)
        self.session.update()
        return {"loss": loss.item()}

    def eval_step(self, batch):
        faces, mel, label = batch
        with self.session.autocast():
            audio_embedding, face_embedding = self.model(mel, faces)
        return {"loss": cosine_loss(audio_embedding, face_embedding, label).item()}


class GeneratorObjective(Objective):
    """Wav2Lip with the frozen expert (wav2lip_train.py): L1 plus, once the expert agrees, sync."""

    name = "Wav2Lip"
    dataset_class = GeneratorSamples
    eval_batches = 700
    evaluate_first_step = True
    raised_syncnet_wt = 0.01  # without the GAN a small weight suffices
    betas = (0.9, 0.999)

    def __init__(self, session, args):
        super().__init__(session, args)
        self.batch_size = hparams.batch_size
        self.checkpoint_interval = hparams.checkpoint_interval
        self.eval_interval = hparams.eval_interval
        self.syncnet_wt = hparams.syncnet_wt
        # The expert is frozen but, as in the reference, never put in eval mode: its BatchNorm
        # layers normalise with the statistics of each batch of generated frames.
        self.expert = SyncNet_color()
        load_weights(self.expert, args.syncnet_checkpoint_path, session.device)
        for parameter in self.expert.parameters():
            parameter.requires_grad = False
        self.model, self.optimizer, state = self.resumable(Wav2Lip(), hparams.initial_learning_rate,
                                                           args.checkpoint_path, betas=self.betas)
        self.start_from(state)
        if "syncnet_wt" in state:
            self.syncnet_wt = float(state["syncnet_wt"])
        self.last = None

    def networks(self):
        return [("", self.model, self.optimizer)]

    def checkpoint_extras(self):
        return {"syncnet_wt": self.syncnet_wt}

    def scalars(self):
        return {"syncnet_wt": self.syncnet_wt}

    def status(self):
        return f"; syncnet_wt {self.syncnet_wt}"

    def sync_loss(self, mel, generated):
        with self.session.autocast():
            audio_embedding, face_embedding = self.expert(mel, lower_halves(generated))
        return cosine_loss(audio_embedding, face_embedding, torch.ones(len(generated), 1, device=generated.device))

    def generator_losses(self, faces, frame_mels, mel, target, evaluating=False):
        """(generated frames, {loss name: tensor}) for one batch; the sync loss only when it
        is weighted in, or for an evaluation."""
        with self.session.autocast():
            generated = self.model(frame_mels, faces)
        losses = {"l1": F.l1_loss(generated.float(), target)}
        if evaluating or self.syncnet_wt > 0:
            losses["sync"] = self.sync_loss(mel, generated)
        return generated, losses

    def generator_loss(self, losses):
        """The weighted sum the generator is trained on."""
        return self.syncnet_wt * losses.get("sync", 0.0) + (1 - self.syncnet_wt) * losses["l1"]

    def train_discriminator(self, real, fake):
        """One step of a discriminator trained beside the generator (none here); its losses."""
        return {}

    def train_step(self, batch):
        faces, frame_mels, mel, target = batch
        self.optimizer.zero_grad(set_to_none=True)
        generated, losses = self.generator_losses(faces, frame_mels, mel, target)
        self.session.backward(self.generator_loss(losses))
        self.session.step(self.optimizer)
        losses.update(self.train_discriminator(target, generated.detach()))
        self.session.update()
        self.last = (faces, generated.detach(), target)
        return {name: value.item() for name, value in losses.items()}

    def eval_step(self, batch):
        _, losses = self.generator_losses(*batch, evaluating=True)
        return {name: value.item() for name, value in losses.items()}

    def after_evaluation(self, losses):
        if losses["sync"] < SYNC_LOSS_THRESHOLD:
            # The reference sets the weight outright; a higher one given with --hparams is kept.
            self.syncnet_wt = max(self.syncnet_wt, self.raised_syncnet_wt)

    def write_samples(self, session, step):
        if self.last is not None:
            training.write_collage(training.collage(*self.last), session.checkpoint_dir / f"samples_step{step:09d}",
                                   session.writer, step)


class GANGeneratorObjective(GeneratorObjective):
    """Wav2Lip with the visual-quality discriminator (hq_wav2lip_train.py)."""

    name = "Wav2Lip + visual-quality GAN"
    eval_batches = 300
    evaluate_first_step = False
    raised_syncnet_wt = 0.03
    betas = (0.5, 0.999)

    prefixes = ("", "disc_")

    def __init__(self, session, args):
        super().__init__(session, args)
        self.disc, self.disc_optimizer, state = self.resumable(Wav2Lip_disc_qual(), hparams.disc_initial_learning_rate,
                                                               args.disc_checkpoint_path, prefix="disc_", betas=self.betas)
        if state and state.get("global_step", 0) != self.global_step and session.is_main:
            print(f"note: the discriminator's checkpoint is at step {state.get('global_step', 0)}, "
                  f"the generator's at step {self.global_step}")

    def networks(self):
        return [("", self.model, self.optimizer), ("disc_", self.disc, self.disc_optimizer)]

    def disc_bce(self, faces, real, disc=None):
        """BCE of the discriminator's P(real) for ``faces`` against ``real``, in float32."""
        with self.session.autocast():
            prediction = (disc or self.disc)(faces)
        prediction = prediction.float()
        return F.binary_cross_entropy(prediction, torch.full_like(prediction, float(real)))

    def generator_losses(self, faces, frame_mels, mel, target, evaluating=False):
        generated, losses = super().generator_losses(faces, frame_mels, mel, target, evaluating)
        # The adversarial loss goes through the bare discriminator: the discriminator
        # gradients it leaves are discarded, so DDP need not synchronise them.
        bare = getattr(self.disc, "module", self.disc)
        use = evaluating or hparams.disc_wt > 0
        losses["perceptual"] = self.disc_bce(generated, real=True, disc=bare) if use else torch.zeros(())
        return generated, losses

    def generator_loss(self, losses):
        return (self.syncnet_wt * losses.get("sync", 0.0) + hparams.disc_wt * losses["perceptual"]
                + (1 - self.syncnet_wt - hparams.disc_wt) * losses["l1"])

    def train_discriminator(self, real, fake):
        # set_to_none also drops what the generator's backward pass left in the discriminator.
        self.disc_optimizer.zero_grad(set_to_none=True)
        losses = {"disc_real": self.disc_bce(real, real=True)}
        self.session.backward(losses["disc_real"])
        losses["disc_fake"] = self.disc_bce(fake, real=False)
        self.session.backward(losses["disc_fake"])
        self.session.step(self.disc_optimizer)
        return losses

    def eval_step(self, batch):
        faces, frame_mels, mel, target = batch
        generated, losses = self.generator_losses(faces, frame_mels, mel, target, evaluating=True)
        losses.update(disc_real=self.disc_bce(target, real=True), disc_fake=self.disc_bce(generated, real=False))
        return {name: value.item() for name, value in losses.items()}
