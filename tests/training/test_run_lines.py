"""What a trainer says about its run: the disk each checkpoint takes and what --keep_last keeps,
what it is doing while it starts, and, once stopped, how to resume it; the data-loader
workers the machine has, which change no batch; the learning check's --report on nothing."""

import re

import pytest
import test_training
from support.synthetic_weights import seeded
from test_training import FAST, flags, hparams_kept, same_state, steps_of

import color_syncnet_train
from benchmarks import learning_check
from hparams import HParams
from models import Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import read_checkpoint
from system import cli
from training.checkpoints import checkpoint_bytes
from training.objectives import ExpertObjective
from training.report import event_files, read_logs

# test_training's fixtures: the tiny synthetic corpus, and hparams put back after each test
corpus, restore_hparams = test_training.corpus, test_training.restore_hparams


def megabytes(text):
    return float(re.fullmatch(r"([\d.]+) MB", text)[1]) * 1e6


def test_the_disk_each_checkpoint_takes_is_said_at_the_start(corpus, tmp_path, capsys):
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "1", "--keep_last", "3")) == 0
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("each checkpoint: "))
    match = re.fullmatch(r"each checkpoint: (.+); --keep_last 3 keeps (.+) \((.+) while the next step is saved\); "
                         r"[\d.]+ GB free in (.+)", line)
    assert match and match[4] == str(out), line
    written = (out / "checkpoint_step000000001.pth").stat().st_size
    assert megabytes(match[1]) == pytest.approx(written, rel=0.01)  # 197 MB: weights and Adam's moments
    assert (megabytes(match[2]), megabytes(match[3])) == pytest.approx((3 * written, 4 * written), rel=0.01)
    # What the run does before its first step is said before it does it.
    assert printed.index("expert SyncNet: building the networks on cpu\n") < printed.index("training clips")


def test_the_generator_checkpoint_is_436_mb_and_without_keep_last_the_growth_is_said():
    from types import SimpleNamespace

    from training.checkpoints import disk_use

    assert round(checkpoint_bytes(Wav2Lip(), optimizer_kept=True) / 1e6) == 436  # as the released files
    assert round(checkpoint_bytes(Wav2Lip(), optimizer_kept=False) / 1e6) == 145
    networks = [("", seeded(Wav2Lip(), 0), None), ("disc_", Wav2Lip_disc_qual(), None)]
    objective = SimpleNamespace(networks=lambda: networks)
    config = SimpleNamespace(hparams={"save_optimizer_state": True}, keep_last=0, checkpoint_dir="/nowhere/at/all")
    assert disk_use(objective, config, 3000) == ("each checkpoint step: 605 MB (generator 436 MB, discriminator 169 MB); "
                                                 "all are kept (--keep_last 0): 605 MB more every 3000 steps")


@pytest.mark.parametrize("stop, status, word", [(KeyboardInterrupt, 130, "interrupted"),
                                                (cli.Terminated, 143, "terminated")])
def test_a_stopped_run_ends_with_the_command_that_resumes_it(corpus, tmp_path, capsys, monkeypatch, stop, status, word):
    out, steps = tmp_path / "expert", []
    train_step = ExpertObjective.train_step

    def stopped_in_step_2(self, batch):
        steps.append(batch)
        if len(steps) == 2:
            raise stop()
        return train_step(self, batch)

    monkeypatch.setattr(ExpertObjective, "train_step", stopped_in_step_2)
    assert cli.run(color_syncnet_train.main, flags(corpus, out, "--max_steps", "3", "--keep_last", "2")) == status
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{word}; its newest checkpoint is of step 1; resume with: python color_syncnet_train.py --config "
        f"{out / 'run.json'} --resume")
    # The step done before the stop is in the logs (between two log lines it would be lost), so
    # that python -m training.report draws it; the learning rate beside it.
    logs = read_logs(event_files(out / "tensorboard"))[0]
    assert [(p.step, p.value) for p in logs["train/learning_rate"]] == [(1, pytest.approx(1e-4))]
    assert [p.step for p in logs["train/loss"]] == [1]
    if stop is cli.Terminated:
        return
    monkeypatch.undo()
    with hparams_kept():
        assert color_syncnet_train.main(["--config", str(out / "run.json"), "--resume"]) == 0  # as the line says
    assert "resuming from" in capsys.readouterr().out and steps_of(out) == [2, 3]  # to its --max_steps, --keep_last 2


def test_a_run_stopped_before_it_started_says_nothing_of_resuming(corpus, tmp_path, capsys, monkeypatch):
    def stopped(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ExpertObjective, "__init__", stopped)
    assert cli.run(color_syncnet_train.main, flags(corpus, tmp_path / "out", "--max_steps", "3")) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_the_number_of_data_loader_workers_changes_no_batch(corpus, tmp_path, capsys):
    # num_workers defaults to the machine's cores (tests/foundations/test_hparams.py): a run must
    # train the same weights whatever that number is.
    alone, spawned = tmp_path / "alone", tmp_path / "spawned"
    assert color_syncnet_train.main(flags(corpus, alone, "--max_steps", "2")) == 0  # FAST: num_workers=0
    capsys.readouterr()
    argv = [part for part in flags(corpus, spawned, "--max_steps", "2", hparams_=FAST.replace("num_workers=0", "num_workers=1"))
            if part != "--quiet"]
    assert color_syncnet_train.main(argv) == 0
    assert "starting 1 data-loader worker:" in capsys.readouterr().err  # the first batch waits for it: said
    same_state(read_checkpoint(alone / "checkpoint_step000000002.pth"),
               read_checkpoint(spawned / "checkpoint_step000000002.pth"))


def test_the_learning_check_report_on_nothing_says_so_and_builds_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for workdir in (tmp_path / "missing", empty):
        assert cli.run(learning_check.main, ["--workdir", str(workdir), "--report"]) == 1
        assert capsys.readouterr().err == (f"error: --workdir {workdir}: nothing to report, no expert checkpoint in "
                                           f"{workdir / 'expert'} yet; run the learning check without --report first\n")
        assert not (workdir / "corpus").exists()


def test_the_learning_check_takes_a_config_and_hands_its_hyper_parameters_to_both_trainers(tmp_path, capsys):
    text = learning_check.hparams_text({"batch_size": 2, "syncnet_lr": 5e-05, "save_optimizer_state": False},
                                       "num_workers=1")
    assert HParams(batch_size=16, syncnet_lr=1e-4, save_optimizer_state=True, num_workers=16).parse(text).values() == \
        {"batch_size": 2, "syncnet_lr": 5e-05, "save_optimizer_state": False, "num_workers": 1}
    file = tmp_path / "check.yaml"
    file.write_text(f"workdir: {tmp_path}\nreport: true\nreduced: true\namp: on\n")
    args, _ = learning_check.parse_with_config(learning_check.build_parser(), ["--config", str(file)])
    assert (args.workdir, args.report, args.reduced, args.amp) == (str(tmp_path), True, True, "on")
    file.write_text("workdri: /tmp\n")
    assert cli.run(learning_check.main, ["--config", str(file)]) == 1
    assert capsys.readouterr().err == (f"error: --config {file}: unknown key 'workdri': not a flag of this script nor "
                                       "\"hparams\" (did you mean 'workdir'?)\n")


def test_a_learning_check_given_a_file_as_its_workdir_says_so_in_one_line(tmp_path, capsys):
    (tmp_path / "run.json").write_text("{}")
    assert cli.run(learning_check.main, ["--workdir", str(tmp_path / "run.json"), "--report"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'run.json'}: Not a directory\n"


def test_a_learning_check_whose_trainer_fails_says_so_in_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a --workdir relative to here, where the trainers do not run
    assert cli.run(learning_check.main, ["--workdir", "check", "--speakers", "8", "--clips", "1",
                                         "--device", "no_such_device"]) == 1
    err = capfd.readouterr().err.splitlines()  # the trainer's own line too, from its process
    assert err[0] == "error: --device 'no_such_device' is not a device (cpu, cuda, cuda:1, mps, ...)"  # the trainer's
    assert err[1:] == [f"error: color_syncnet_train.py stopped with exit status 1 on its way to step 2000; "
                       f"{tmp_path / 'check' / 'expert'} keeps what it saved, and a rerun of the learning check goes "
                       "on from there"]


def test_a_finished_benchmark_stage_is_read_back_from_its_logs(tmp_path):
    """benchmarks' run_trainer on a stage already trained to its steps: nothing is run, and its
    steps and wall time come from the checkpoints and the logs' wall times."""
    from torch.utils.tensorboard import SummaryWriter

    from benchmarks.training_runs import run_trainer

    (tmp_path / "started_at").write_text("1000.0")
    (tmp_path / "checkpoint_step000000005.pth").write_bytes(b"")
    with SummaryWriter(tmp_path / "tensorboard") as writer:
        writer.add_scalar("eval/loss", 0.5, 5, walltime=1042.0)
    assert run_trainer("no_such_trainer.py", [], 5, 5, "eval/loss", None, tmp_path, "the check") == (5, 42.0)


def test_the_sync_audit_check_audits_with_the_best_evaluated_expert(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from benchmarks.sync_audit_check import best_checkpoint

    for step in (100, 200, 300):
        (tmp_path / f"checkpoint_step{step:09d}.pth").write_bytes(b"")
    with SummaryWriter(tmp_path / "tensorboard") as writer:
        for step, loss in ((100, 0.5), (200, 0.37), (300, 0.69)):  # the last evaluation fell back to chance
            writer.add_scalar("eval/loss", loss, step)
    assert best_checkpoint(tmp_path) == tmp_path / "checkpoint_step000000200.pth"
