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
from pathlib import Path

import torch
from tqdm import tqdm

import cli
from atomic_write import reading
from errors import UserError, check_number
from hparams import add_hparams_argument, apply_hparams_argument, hparams
from training.batches import (
    batches,
    check_batch_memory,
    data_loader,
    evaluation_batches,
    reraise_worker_errors,
)
from training.checkpoints import (
    complete_steps,
    refuse_beside_other_runs,
    refuse_inputs_named_as_checkpoints,
    refuse_replacing_later_steps,
)
from training.dataset import find_filelists
from training.session import Session, seed_everything

# The least value of each trainer flag that takes a number (None: not given, no limit).
FLAG_MINIMUMS = {"max_steps": 1, "eval_batches": 1, "keep_last": 0, "log_interval": 1}


def add_training_flags(parser, disc=False, syncnet=False):
    """The reference's flags and the ones every trainer adds to them."""
    parser.add_argument("--data_root", required=True, help="root folder of the preprocessed dataset")
    parser.add_argument("--checkpoint_dir", required=True, help="where checkpoints, samples and TensorBoard logs go")
    parser.add_argument("--checkpoint_path", help="resume from this checkpoint (step, epoch and optimiser included)")
    if syncnet:
        parser.add_argument("--syncnet_checkpoint_path", required=True, help="the trained expert lip-sync discriminator")
    if disc:
        parser.add_argument("--disc_checkpoint_path", help="resume the visual-quality discriminator from this checkpoint")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the newest checkpoint(s) in --checkpoint_dir of the run that saved there "
                             "last, if there are any")
    parser.add_argument("--start_over", action="store_true",
                        help="train a new run in a --checkpoint_dir that holds checkpoints already (another "
                             "run's, or later steps of the one resumed): this run's checkpoints replace theirs of "
                             "the same step numbers; the others are kept, and --keep_last never prunes them")
    parser.add_argument("--filelists", help="folder of train.txt and val.txt (default: filelists/, as the reference; "
                                            "or <data_root>/filelists/ when only that one has them)")
    parser.add_argument("--max_steps", type=int, help="stop after this global step (default: train until interrupted)")
    parser.add_argument("--eval_batches", type=int, help="batches per evaluation (default: the reference's number)")
    parser.add_argument("--keep_last", type=int, default=0, metavar="N",
                        help="keep only the newest N checkpoints of each network; 0 keeps all")
    parser.add_argument("--log_interval", type=int, default=50, help="steps between TensorBoard scalars")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights' initialisation and the sampling")
    parser.add_argument("--amp", choices=["auto", "on", "off", "fp16", "bf16"], default="auto",
                        help="mixed precision: on = bfloat16, or float16 with loss scaling where bfloat16 is slow; "
                             "auto = on a CUDA GPU; fp16 or bf16 to choose")
    add_hparams_argument(parser)
    cli.add_run_flags(parser)


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
    objective.after_evaluation(losses)
    session.log_scalars("eval", losses, step)
    if session.is_main:
        tqdm.write(f"step {step}: evaluation over {eval_batches} batches: {format_losses(losses)}"
                   f"{objective.status()}", file=sys.stderr)
    return losses


def _announce(objective, train_loader, eval_loader, session, step):
    print(f"{objective.name}: {len(train_loader.dataset.clips)} training clips, {len(eval_loader.dataset.clips)} "
          f"validation clips; batch {objective.batch_size} x {session.world_size} process(es) on {session.device}"
          + (f", mixed precision {str(session.amp_dtype).split('.')[-1]}" if session.amp_dtype else "")
          + f"; starting at step {step}")


def train(objective, args):
    """Run ``objective`` from its resumed step until --max_steps (or forever); returns the last step."""
    session = objective.session
    eval_batches = args.eval_batches or objective.eval_batches
    train_loader = data_loader(objective.dataset_class, "train", args, objective.batch_size, session)
    eval_loader = data_loader(objective.dataset_class, "val", args, objective.batch_size, session,
                              evaluation_batches(eval_batches, session))
    step, epoch = objective.global_step, objective.global_epoch
    first_step, started = step, time.time()
    if args.max_steps is not None and step >= args.max_steps:
        raise UserError(f"the checkpoint is at step {step}, already at --max_steps {args.max_steps}")
    if session.is_main:
        _announce(objective, train_loader, eval_loader, session, step)

    running, skipped, last_eval, tick, tick_step = {}, 0, {}, time.time(), step
    bar = tqdm(total=args.max_steps, initial=step, unit="step", disable=session.quiet, dynamic_ncols=True)
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
            if step % args.log_interval == 0 or step == args.max_steps:
                now = time.time()
                session.log_scalars("train", {**_means(running), **objective.scalars(), "skipped_samples": skipped,
                                              "steps_per_second": (step - tick_step) / max(now - tick, 1e-9)}, step)
                running, tick, tick_step = {}, now, step
            if args.max_steps is not None and step >= args.max_steps:
                break
    finally:
        bar.close()
    if step % objective.checkpoint_interval != 0 and step != 1:
        save_unless_diverged(objective, step, epoch)  # the final state, unless that step was just saved
    if session.is_main:
        seconds = time.time() - started
        steps = step - first_step
        print(f"{objective.name}: trained steps {first_step}..{step} ({steps} steps, {seconds:.0f} s, "
              f"{steps / max(seconds, 1e-9):.2f} steps/s); last evaluation: {format_losses(last_eval) or 'none'}"
              f"{objective.status()}; {skipped} unreadable samples skipped; checkpoints in {session.checkpoint_dir}")
    return step


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
    rates = ", ".join(f"{name}={getattr(hparams, name)!r}" for name in objective.learning_rates)
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



def trainer_parser(doc, disc=False, syncnet=False):
    """A trainer's command line: ``doc``'s first paragraph and the flags of ``add_training_flags``."""
    parser = cli.argument_parser(doc)
    add_training_flags(parser, disc=disc, syncnet=syncnet)
    return parser


def main_for(objective_class, build_parser):
    """The command-line entry point of a trainer: ``sys.exit(cli.run(main_for(...)))``."""

    def main(argv):
        args = build_parser().parse_args(argv)
        check_flags(args)
        apply_hparams_argument(args)
        cli.existing_folder(args.data_root, "--data_root")
        inputs = {flag: getattr(args, flag[2:], None)
                  for flag in ("--checkpoint_path", "--disc_checkpoint_path", "--syncnet_checkpoint_path")}
        refuse_inputs_named_as_checkpoints(args.checkpoint_dir, objective_class.prefixes, inputs)
        session = Session(args)
        try:
            session.claim()
            resumed = args.resume or args.checkpoint_path is not None
            if not (resumed or args.start_over):
                session.check_on_main(lambda: refuse_beside_other_runs(session.checkpoint_dir, objective_class.prefixes))
            if args.filelists is None:  # not given: filelists/, or the data's own
                args.filelists = find_filelists("filelists", args.data_root)
                if args.filelists != Path("filelists") and session.is_main:
                    print(f"no filelists/train.txt: using the filelists in {args.filelists}")
            seed_everything(args.seed, session.rank)
            objective = objective_class(session, args)
            check_batch_memory(objective.dataset_class, objective.batch_size)
            if resumed and not args.start_over:
                session.check_on_main(lambda: refuse_replacing_later_steps(
                    session.checkpoint_dir, objective.prefixes, objective.run_id, objective.global_step,
                    args.max_steps))
            session.start_logging()
            with reading(inputs):  # no checkpoint, sample or log may replace a file the run reads
                train(objective, args)
        finally:
            session.close()
        return 0

    return main


def check_flags(args):
    """A trainer flag below its least value is one line, before any work."""
    check_number("--seed", args.seed, 0, 2**32 - 1, whole=True)  # what NumPy's generators take
    for name, least in FLAG_MINIMUMS.items():
        value = getattr(args, name)
        if value is not None and value < least:
            raise UserError(f"--{name} must be at least {least}, not {value}")
