"""What each trainer optimises: the expert SyncNet, Wav2Lip, and Wav2Lip with the visual-quality GAN.

An objective owns its networks and optimisers and knows one training step, one evaluation
step and what an evaluation changes (the ``syncnet_wt`` switch); ``training.loop.train`` runs
it. The losses themselves are in ``training/losses.py``: the reference's, each written once.
Forward passes run under the session's mixed precision, losses in float32. An objective reads
its settings from the run's ``TrainingConfig`` (training/config.py), which records its
constants too (``constants()``).
"""

import contextlib
import math

import torch
import torch.nn.functional as F

from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import FaceSizeMismatch, load_weights
from models.inputs import stack_lower_halves
from training.checkpoints import (
    DISC_PREFIX,
    MAIN_PREFIX,
    check_same_run,
    new_run_id,
    restore,
    resume_paths,
)
from training.dataset import ContrastiveExpertSamples, ExpertSamples, GeneratorSamples
from training.losses import (
    INFONCE_TEMPERATURE,
    cosine_loss,
    generator_loss,
    infonce_loss,
    realness_loss,
    sync_accuracy,
)
from training.samples import collage, write_collage

SYNC_LOSS_THRESHOLD = 0.75  # evaluation sync loss below which the expert's weight is raised
# The reference's README: the expert's evaluation loss should reach ~0.25, the generator's
# evaluation sync loss ~0.2. A BCE of ln 2 = 0.693 is a coin toss.
EXPERT_TARGET, GENERATOR_SYNC_TARGET, CHANCE = 0.25, 0.2, math.log(2)
CHANCE_MARGIN = 0.02  # an expert's evaluation loss this close to chance has learnt nothing yet


class Objective:
    """What the three objectives share: the session, the configuration, the networks resumed,
    the starting step and the train/eval switch."""

    evaluate_first_step = False
    betas = (0.9, 0.999)  # Adam's, for every network of the objective
    prefixes = (MAIN_PREFIX,)  # the checkpoint name prefix of each network trained, in the order they are saved

    def __init__(self, session, config):
        self.session, self.config = session, config
        self.global_step = self.global_epoch = 0
        self.run_id = self.resumed_run = None
        self.trained_networks, self.resumed_runs = {}, {}  # {prefix: (model, optimiser)}, {prefix: run id}
        # --resume: the newest step that every network has a checkpoint of.
        self.resume_from = resume_paths(config.checkpoint_dir, self.prefixes) if config.resume else {}

    @classmethod
    def constants(cls):
        """The objective's fixed settings, recorded in the run's configuration."""
        return {"eval_batches": cls.eval_batches, "evaluate_first_step": cls.evaluate_first_step,
                "adam_betas": list(cls.betas)}

    def resumable(self, model, lr, prefix=MAIN_PREFIX):
        """``model`` (network ``prefix``) on the session's device with its Adam optimiser, both
        resumed from the checkpoint given for it or, with --resume, the newest complete step;
        returns (model wrapped for DDP, optimiser, checkpoint dict)."""
        model.to(self.session.device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=self.betas)
        with sized_for_this_run():
            state = restore(self.session, model, optimizer, self.source(prefix), self.config)
        self.trained_networks[prefix] = (self.session.wrap(model), optimizer)
        self.resumed_runs[prefix] = state.get("run_id")
        return (*self.trained_networks[prefix], state)

    def source(self, prefix=MAIN_PREFIX):
        """The checkpoint network ``prefix`` resumes from: the one given if any, else --resume's."""
        path = self.config.checkpoint_path_of(prefix)
        return path if path is not None else self.resume_from.get(prefix)

    def networks(self):
        """(prefix, model, optimiser) of each network trained, in the order of ``prefixes``."""
        return [(prefix, *self.trained_networks[prefix]) for prefix in self.prefixes]

    def start_from(self, state):
        """The step, epoch and run of the main network's checkpoint (``state``): a run resumed
        goes on under its id; a fresh one, or one resumed from a checkpoint without an id (the
        released ones), is a new run."""
        self.resumed_run = state.get("run_id")
        self.run_id = self.resumed_run or new_run_id()
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
        """What a training log holds beside the losses: each optimiser's learning rate."""
        return {"learning_rate" if prefix == MAIN_PREFIX else f"{prefix.rstrip('_')}_learning_rate":
                optimizer.param_groups[0]["lr"] for prefix, _, optimizer in self.networks()}

    def status(self):
        return ""

    def after_evaluation(self, losses, step):
        """What an evaluation changes, and a note on it (or "") for the evaluation's line."""
        return ""

    def write_samples(self, session, step):
        pass


class ExpertObjective(Objective):
    """The expert lip-sync discriminator (color_syncnet_train.py)."""

    name = "expert SyncNet"
    script = "color_syncnet_train.py"  # its trainer
    learning_rates = ("syncnet_lr",)  # the hyper-parameters to lower when training diverges
    dataset_class = eval_dataset_class = ExpertSamples  # evaluated on the reference's pairs, whatever the loss
    eval_batches = 1400

    def __init__(self, session, config):
        super().__init__(session, config)
        hparams = config.hparams
        self.batch_size = hparams["syncnet_batch_size"]
        self.checkpoint_interval = hparams["syncnet_checkpoint_interval"]
        self.eval_interval = hparams["syncnet_eval_interval"]
        self.chance_steps = hparams["syncnet_chance_warning_steps"]
        self.contrastive = hparams["expert_loss"] == "infonce"
        if self.contrastive:  # each sample: the in-sync window and the same clip's shifted one, for one audio
            self.dataset_class = ContrastiveExpertSamples
        self.model, self.optimizer, state = self.resumable(SyncNet_color(hparams["face_size"]), hparams["syncnet_lr"])
        self.start_from(state)
        self.learning_since = self.global_step  # the last evaluation away from chance (or the run's start)
        self.warned = False

    @classmethod
    def constants(cls):
        return {**super().constants(), "infonce_temperature": INFONCE_TEMPERATURE}

    def train_step(self, batch):
        self.optimizer.zero_grad(set_to_none=True)
        if self.contrastive:
            faces, shifted, mel = batch
            with self.session.autocast():  # one pass, so that DDP sees the network run once
                audio_embedding, face_embedding = self.model(torch.cat([mel, mel]), torch.cat([faces, shifted]))
            size = len(mel)
            loss = infonce_loss(audio_embedding[:size], face_embedding[:size], face_embedding[size:])
        else:
            faces, mel, label = batch
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
        return {"loss": cosine_loss(audio_embedding, face_embedding, label).item(),
                "sync_accuracy": sync_accuracy(audio_embedding, face_embedding, label).item()}

    def after_evaluation(self, losses, step):
        note = f" (the reference's target: loss ~{EXPERT_TARGET})"
        if abs(losses["loss"] - CHANCE) > CHANCE_MARGIN:
            self.learning_since = step
        elif step - self.learning_since >= self.chance_steps and not self.warned:
            self.warned = True  # once: the line after the evaluation's says it
            note += "\n" + stuck_at_chance(self.config.data_root, self.learning_since, step)
        return note


class GeneratorObjective(Objective):
    """Wav2Lip with the frozen expert (wav2lip_train.py): L1 plus, once the expert agrees, sync."""

    name = "Wav2Lip"
    script = "wav2lip_train.py"  # its trainer
    learning_rates = ("initial_learning_rate",)
    dataset_class = eval_dataset_class = GeneratorSamples
    eval_batches = 700
    evaluate_first_step = True
    raised_syncnet_wt = 0.01  # without the GAN a small weight suffices
    disc, disc_wt = None, 0.0  # the GAN objective sets both

    def __init__(self, session, config):
        super().__init__(session, config)
        hparams = config.hparams
        self.batch_size = hparams["batch_size"]
        self.checkpoint_interval = hparams["checkpoint_interval"]
        self.eval_interval = hparams["eval_interval"]
        self.syncnet_wt = hparams["syncnet_wt"]
        # The expert is frozen but, as in the reference, never put in eval mode: its BatchNorm
        # layers normalise with the statistics of each batch of generated frames.
        self.expert = SyncNet_color(hparams["face_size"])
        with sized_for_this_run():  # an expert of another size than the generator: one line, before any step
            load_weights(self.expert, config.syncnet_checkpoint_path, session.device)
        for parameter in self.expert.parameters():
            parameter.requires_grad = False
        self.model, self.optimizer, state = self.resumable(Wav2Lip(hparams["face_size"]), hparams["initial_learning_rate"])
        self.start_from(state)
        if "syncnet_wt" in state:
            self.syncnet_wt = float(state["syncnet_wt"])
        self.last = None

    @classmethod
    def constants(cls):
        return {**super().constants(), "sync_loss_threshold": SYNC_LOSS_THRESHOLD,
                "raised_syncnet_wt": cls.raised_syncnet_wt}

    def checkpoint_extras(self):
        return {"syncnet_wt": self.syncnet_wt}

    def scalars(self):
        return {**super().scalars(), "syncnet_wt": self.syncnet_wt}

    def status(self):
        return f"; syncnet_wt {self.syncnet_wt}"

    def sync_loss(self, mel, generated):
        with self.session.autocast():
            audio_embedding, face_embedding = self.expert(mel, stack_lower_halves(generated))
        return cosine_loss(audio_embedding, face_embedding, torch.ones(len(generated), 1, device=generated.device))

    def generator_losses(self, faces, frame_mels, mel, target, evaluating=False):
        """(generated frames, {loss name: tensor}) for one batch. A term is computed when it is
        weighted in (see ``training.losses.generator_loss``), and always for an evaluation."""
        with self.session.autocast():
            generated = self.model(frame_mels, faces)
        # Built in the reference's order (sync, adversarial, L1): autograd sums the terms'
        # gradients in the reverse order of their graphs, so the gradients stay bit for bit its own.
        losses = {}
        if evaluating or self.syncnet_wt > 0:
            losses["sync"] = self.sync_loss(mel, generated)
        if self.disc is not None:
            losses["perceptual"] = self.adversarial_loss(generated) if evaluating or self.disc_wt > 0 \
                else torch.zeros(())
        losses["l1"] = F.l1_loss(generated.float(), target)
        return generated, {name: losses[name] for name in ("l1", "sync", "perceptual") if name in losses}

    def train_discriminator(self, real, fake):
        """One step of a discriminator trained beside the generator (none here); its losses."""
        return {}

    def train_step(self, batch):
        faces, frame_mels, mel, target = batch
        self.optimizer.zero_grad(set_to_none=True)
        generated, losses = self.generator_losses(faces, frame_mels, mel, target)
        self.session.backward(generator_loss(losses, self.syncnet_wt, self.disc_wt))
        self.session.step(self.optimizer)
        losses.update(self.train_discriminator(target, generated.detach()))
        self.session.update()
        self.last = (faces, generated.detach(), target)
        return {name: value.item() for name, value in losses.items()}

    def eval_step(self, batch):
        generated, losses = self.generator_losses(*batch, evaluating=True)
        return {**{name: value.item() for name, value in losses.items()}, **self.expert_verdicts(batch, generated)}

    def expert_verdicts(self, batch, generated):
        """The expert's sync accuracy on the generated windows (the share it calls in sync),
        and its sync loss on the true windows: how far the generator is from the truth, and
        whether the expert itself knows this data (the reference's expert scores ~0.25)."""
        mel, target = batch[2], batch[3]
        with self.session.autocast():
            generated_embeddings = self.expert(mel, stack_lower_halves(generated))
            true_embeddings = self.expert(mel, stack_lower_halves(target))
        in_sync = torch.ones(len(generated), 1, device=generated.device)
        return {"sync_accuracy": sync_accuracy(*generated_embeddings, in_sync).item(),
                "truth_sync": cosine_loss(*true_embeddings, in_sync).item()}

    def after_evaluation(self, losses, step):
        if losses["sync"] < SYNC_LOSS_THRESHOLD:
            # The reference sets the weight outright; a higher one given with --hparams is kept.
            self.syncnet_wt = max(self.syncnet_wt, self.raised_syncnet_wt)
        return f" (the reference's targets: sync ~{GENERATOR_SYNC_TARGET}; its expert scores the truth ~{EXPERT_TARGET})"

    def write_samples(self, session, step):
        if self.last is not None:
            write_collage(collage(*self.last), session.checkpoint_dir / f"samples_step{step:09d}",
                          session.writer, step)


class GANGeneratorObjective(GeneratorObjective):
    """Wav2Lip with the visual-quality discriminator (hq_wav2lip_train.py)."""

    name = "Wav2Lip + visual-quality GAN"
    script = "hq_wav2lip_train.py"  # its trainer
    learning_rates = ("initial_learning_rate", "disc_initial_learning_rate")
    eval_batches = 300
    evaluate_first_step = False
    raised_syncnet_wt = 0.03
    betas = (0.5, 0.999)
    prefixes = (MAIN_PREFIX, DISC_PREFIX)

    def __init__(self, session, config):
        super().__init__(session, config)
        self.disc_wt = config.hparams["disc_wt"]
        self.disc, self.disc_optimizer, state = self.resumable(
            Wav2Lip_disc_qual(config.hparams["face_size"]), config.hparams["disc_initial_learning_rate"], prefix=DISC_PREFIX)
        check_same_run({self.source(prefix): self.resumed_runs[prefix] for prefix in self.prefixes})
        if state and state.get("global_step", 0) != self.global_step and session.is_main:
            print(f"note: the discriminator's checkpoint is at step {state.get('global_step', 0)}, "
                  f"the generator's at step {self.global_step}")

    def adversarial_loss(self, generated):
        """The discriminator's BCE of the generated frames against "real" (GAN only)."""
        # Through the bare discriminator: the discriminator gradients this leaves are
        # discarded, so DDP need not synchronise them.
        return self.realness(generated, real=True, disc=getattr(self.disc, "module", self.disc))

    def realness(self, faces, real, disc=None):
        """``realness_loss`` of the discriminator's prediction for ``faces``."""
        with self.session.autocast():
            prediction = (disc or self.disc)(faces)
        return realness_loss(prediction, real)

    def train_discriminator(self, real, fake):
        # set_to_none also drops what the generator's backward pass left in the discriminator.
        self.disc_optimizer.zero_grad(set_to_none=True)
        losses = {"disc_real": self.realness(real, real=True)}
        self.session.backward(losses["disc_real"])
        losses["disc_fake"] = self.realness(fake, real=False)
        self.session.backward(losses["disc_fake"])
        self.session.step(self.disc_optimizer)
        return losses

    def eval_step(self, batch):
        faces, frame_mels, mel, target = batch
        generated, losses = self.generator_losses(faces, frame_mels, mel, target, evaluating=True)
        losses.update(disc_real=self.realness(target, real=True), disc_fake=self.realness(generated, real=False))
        return {**{name: value.item() for name, value in losses.items()}, **self.expert_verdicts(batch, generated)}


@contextlib.contextmanager
def sized_for_this_run():
    """A checkpoint of another face size than the run's: its error says how to train at the file's."""
    try:
        yield
    except FaceSizeMismatch as error:
        raise FaceSizeMismatch(f"{error} (this run's --hparams face_size={error.wanted}; --hparams "
                               f"face_size={error.found} trains at the file's)", error.found, error.wanted) from None


def stuck_at_chance(data_root, since, step):
    """The one warning of an expert whose evaluation loss has stayed at chance."""
    return (f"warning: the expert's evaluation loss has stayed within {CHANCE_MARGIN} of chance ({CHANCE:.3f}) "
            f"from step {since} to step {step}: it has learnt nothing yet. Likely causes: audio out of sync with "
            f"the video (measure it: python sync_audit.py --data_root {data_root} --syncnet_checkpoint_path "
            "lipsync_expert.pth), a frame rate other than 25 fps, too few speakers; on LRS2 it can take many "
            "thousand steps (syncnet_chance_warning_steps sets when this is said)")
