"""The training loop the three trainers share: data, devices, checkpoints, logging, resume.

A trainer is an *objective* (see ``objectives.py``): its networks and optimisers, one
training step, one evaluation step and what to do with an evaluation. ``train`` runs it
the way the reference trainers run: a checkpoint at step 1 and every checkpoint interval,
sample collages every checkpoint interval, an evaluation every evaluation interval. Beyond
the reference: ``--max_steps``, resume of step, epoch, optimiser and ``syncnet_wt``, atomic
checkpoints with ``--keep_last``, TensorBoard, ``--seed``, mixed precision on the GPU and
multi-GPU / multi-node training with ``torchrun`` (DDP; each rank draws its own samples;
rank 0 logs and writes checkpoints).
"""

import math
import sys
import time

import torch
from tqdm import tqdm

from system.atomic_write import reading
from system.errors import UserError
from system.progress import counted
from training.batches import (
    batches,
    check_batch_memory,
    data_loader,
    evaluation_batches,
    loader_workers,
    reraise_worker_errors,
)
from training.checkpoints import (
    checkpoint_flag,
    complete_steps,
    disk_use,
    refuse_beside_other_runs,
    refuse_inputs_named_as_checkpoints,
    refuse_replacing_later_steps,
)
from training.session import Session, seed_everything


def evaluate(objective, loader, session):
    """Mean of each evaluation loss over the loader's batches on every rank: the same
    validation samples at every evaluation (the loader's one epoch, from step 0)."""
    totals = {}
    objective.set_train(False)
    # The generator's first evaluation (700 batches at step 1) takes a while on a CPU: show it.
    with torch.no_grad(), tqdm(total=len(loader), desc="evaluation", unit="batch", leave=False,
                               disable=session.quiet, dynamic_ncols=True) as bar:
        for batch in reraise_worker_errors(loader):
            _accumulate(totals, objective.eval_step(to_device(batch[:-1], session.device)))
            bar.update()
    objective.set_train(True)
    return session.all_mean(totals)


def to_device(batch, device):
    return [tensor.to(device, non_blocking=True) for tensor in batch]


def evaluate_and_log(objective, loader, session, step, eval_batches):
    """An evaluation, what it changes in the objective, its TensorBoard scalars and its line."""
    losses = unless_diverged(objective, f"the evaluation at step {step}",
                             lambda: evaluate(objective, loader, session))
    note = objective.after_evaluation(losses, step)
    session.log_scalars("eval", losses, step)
    if session.is_main:
        tqdm.write(f"step {step}: evaluation over {eval_batches} batches: {format_losses(losses)}{note}"
                   f"{objective.status()}", file=sys.stderr)
    return losses


def _announce(objective, train_loader, eval_loader, session, step):
    print(f"{objective.name}: {counted(len(train_loader.dataset.clips), 'training clip')}, "
          f"{counted(len(eval_loader.dataset.clips), 'validation clip')}; batch {objective.batch_size} x {session.world_size} process(es) on {session.device}"
          + (f", mixed precision {str(session.amp_dtype).split('.')[-1]}" if session.amp_dtype else "")
          + f"; starting at step {step}")
    print(disk_use(objective, objective.config, objective.checkpoint_interval))


def train(objective, config):
    """Run ``objective`` from its resumed step until --max_steps (or forever) as the run's
    ``config`` says; returns the last step."""
    session, eval_batches, max_steps = objective.session, config.eval_batches, config.max_steps
    train_loader = data_loader(objective.dataset_class, "train", config, objective.batch_size, session)
    eval_loader = data_loader(objective.eval_dataset_class, "val", config, objective.batch_size, session,
                              evaluation_batches(eval_batches, session))
    step, epoch = objective.global_step, objective.global_epoch
    first_step, started = step, time.time()
    if max_steps is not None and step >= max_steps:
        raise UserError(f"the checkpoint is at step {step}, already at --max_steps {max_steps}")
    session.check_on_main(config.write_run_file)  # the run starts: run.json says how (rank 0 writes it)
    if session.is_main:
        _announce(objective, train_loader, eval_loader, session, step)

    running, skipped, last_eval, tick, tick_step = {}, 0, {}, time.time(), step
    bar = tqdm(total=max_steps, initial=step, unit="step", disable=session.quiet, dynamic_ncols=True)
    workers = loader_workers(config)  # spawned, each imports torch: the first batch can take a while
    bar.set_description(f"starting {workers} data-loader worker{'s' * (workers > 1)}" if workers else "first batch")
    try:
        for epoch_ended, batch in batches(train_loader, step):
            if epoch_ended:
                epoch += 1
                continue
            *tensors, skip_counts = batch
            skipped += int(skip_counts.sum())
            losses = unless_diverged(objective, f"step {step + 1}",
                                     lambda: objective.train_step(to_device(tensors, session.device)))
            if step % objective.checkpoint_interval == 0 and session.is_main:
                objective.write_samples(session, step)
            step += 1
            _accumulate(running, losses)
            bar.update()
            bar.set_description(format_losses(_means(running)))

            if step == 1 or step % objective.checkpoint_interval == 0:
                save_unless_diverged(objective, step, epoch)
            if (step == 1 and objective.evaluate_first_step) or step % objective.eval_interval == 0:
                last_eval = evaluate_and_log(objective, eval_loader, session, step, eval_batches)
            if step % config.log_interval == 0 or step == max_steps:
                log_training(objective, running, skipped, step, tick_step, tick)
                running, tick, tick_step = {}, time.time(), step
            if max_steps is not None and step >= max_steps:
                break
    finally:
        bar.close()
        if step > tick_step:  # stopped between log lines (Ctrl-C, an error): its last steps are logged too
            log_training(objective, running, skipped, step, tick_step, tick)
    if step % objective.checkpoint_interval != 0 and step != 1:
        save_unless_diverged(objective, step, epoch)  # the final state, unless that step was just saved
    if session.is_main:
        seconds = time.time() - started
        steps = step - first_step
        print(f"{objective.name}: trained steps {first_step}..{step} ({counted(steps, 'step')}, {seconds:.0f} s, "
              f"{steps / max(seconds, 1e-9):.2f} steps/s); last evaluation: {format_losses(last_eval) or 'none'}"
              f"{objective.status()}; {skipped} unreadable samples skipped; checkpoints in {session.checkpoint_dir}")
    return step


def log_training(objective, running, skipped, step, tick_step, tick):
    """The training scalars at ``step``: the running means since ``tick_step``, the objective's
    settings (learning rates, syncnet_wt), unreadable samples skipped and steps per second."""
    objective.session.log_scalars("train", {**_means(running), **objective.scalars(), "skipped_samples": skipped,
                                            "steps_per_second": (step - tick_step) / max(time.time() - tick, 1e-9)},
                                  step)


def unless_diverged(objective, when, losses_of):
    """``losses_of()``, the losses of a training or evaluation step; a loss that is not finite
    (a learning rate far too high) is one line, where the reference printed a traceback or
    trained on NaN. Under float16 loss scaling such a step is skipped instead, as it should
    be, unless the weights themselves are no longer finite."""
    losses = losses_of()
    if all(math.isfinite(value) for value in losses.values()):
        return losses
    if objective.session.scaler.is_enabled() and weights_finite(objective):
        return losses
    raise diverged(objective, when)


def save_unless_diverged(objective, step, epoch):
    """Checkpoint the step; weights that are no longer finite are never saved."""
    if not weights_finite(objective):
        raise diverged(objective, f"step {step}")
    objective.session.save(objective, step, epoch)


def weights_finite(objective):
    weights = [p for model in objective.trained() for p in model.parameters()]
    return bool(torch.stack([torch.isfinite(p).all() for p in weights]).all())


def diverged(objective, when):
    folder = objective.session.checkpoint_dir
    saved = complete_steps(folder, objective.prefixes)
    kept = f"its newest checkpoint in {folder} is of step {saved[-1]}" if saved else "no checkpoint was saved"
    rates = ", ".join(f"{name}={objective.config.hparams[name]!r}" for name in objective.learning_rates)
    return UserError(f"training diverged at {when}: a loss of {objective.name} is no longer finite (NaN or "
                     f"Inf); {kept}; lower the learning rate ({rates}) with --hparams")


def _accumulate(sums, values):
    """Add {name: value} to {name: (sum, count)}."""
    for name, value in values.items():
        total, n = sums.get(name, (0.0, 0))
        sums[name] = (total + value, n + 1)


def _means(running):
    return {name: total / n for name, (total, n) in running.items()}


def format_losses(values):
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items())


def run_training(objective_class, config):
    """Train ``objective_class`` as the run's ``config`` says (training/config.py): the folder
    claimed, the refusals made, the run resumed or started, its configuration written, trained."""
    inputs = {checkpoint_flag(prefix): config.checkpoint_path_of(prefix) for prefix in objective_class.prefixes}
    inputs["--syncnet_checkpoint_path"] = config.syncnet_checkpoint_path
    refuse_inputs_named_as_checkpoints(config.checkpoint_dir, objective_class.prefixes, inputs)
    session = Session(config)
    try:
        session.claim()
        resumed = config.resume or config.checkpoint_path is not None
        if not (resumed or config.start_over):
            session.check_on_main(lambda: refuse_beside_other_runs(session.checkpoint_dir, objective_class.prefixes))
        if config.filelists_from_data_root and session.is_main:
            print(f"no filelists/train.txt: using the filelists in {config.filelist_dir}")
        seed_everything(config.seed, session.rank)
        if session.is_main:  # a few seconds on a CPU, more to read a checkpoint from a slow disk
            reads = config.resume or any(config.checkpoint_path_of(prefix) for prefix in objective_class.prefixes) \
                or config.syncnet_checkpoint_path
            print(f"{objective_class.name}: building the networks{' and reading checkpoints' if reads else ''} on "
                  f"{session.device}", flush=True)
        objective = objective_class(session, config)
        check_batch_memory(objective.dataset_class, objective.batch_size, config)
        if resumed and not config.start_over:
            session.check_on_main(lambda: refuse_replacing_later_steps(
                session.checkpoint_dir, objective.prefixes, objective.run_id, objective.global_step,
                config.max_steps))
        session.start_logging()
        with reading(inputs):  # no checkpoint, sample, log or run.json may replace a file the run reads
            train(objective, config)
    finally:
        session.close()
