"""Training runs that cannot collide: one run per checkpoint folder (a lock), runs told apart
by the id each checkpoint carries, --keep_last pruning only the run's own checkpoints, and
trainer flags checked before any work."""

import errno
import math
import signal
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
import test_training
import torch
import torch.nn.functional as F
from support.confined import ENV, kill_when, script, temporaries
from support.synthetic_weights import seeded
from test_training import FAST, flags, steps_of

import color_syncnet_train
import hq_wav2lip_train
import wav2lip_train
from models import Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import read_checkpoint, save_checkpoint
from system import cli
from system.errors import UserError
from training import folder_lock
from training.checkpoints import (
    RUNS_RECORD,
    check_same_run,
    checkpoints,
    prune,
    record_run,
    refuse_replacing_later_steps,
    runs_of,
)
from training.loop import unless_diverged
from training.losses import cosine_loss, realness_loss

# Checkpoints without the optimiser's state (a third of the size) and batches of two (half the time):
# these tests check files, not training.
SMALL = FAST + ",save_optimizer_state=false,syncnet_batch_size=2"
EVERY_STEP = SMALL + ",syncnet_checkpoint_interval=1,syncnet_eval_interval=1000"


# test_training's fixtures: the tiny synthetic corpus, and hparams put back after each test
corpus, restore_hparams = test_training.corpus, test_training.restore_hparams


def wait_for(ready, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.005)


def holds_lock(folder):
    lock = folder / "training.lock"
    return lock.is_file() and "pid" in lock.read_text()


def test_a_second_run_on_a_folder_in_use_is_refused_and_ctrl_c_releases_the_folder(corpus, tmp_path, capsys):
    out, expert = tmp_path / "run", str(corpus / "expert.pth")
    first = subprocess.Popen(script("color_syncnet_train.py", *flags(corpus, out, "--max_steps", "1000",
                                                                      hparams_=SMALL + ",syncnet_checkpoint_interval=1000")),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for(lambda: holds_lock(out) or checkpoints(out), first)
        for main, extra in [(color_syncnet_train.main, []), (wav2lip_train.main, ["--syncnet_checkpoint_path", expert]),
                            (hq_wav2lip_train.main, ["--syncnet_checkpoint_path", expert, "--resume"])]:
            assert cli.run(main, flags(corpus, out, *extra, "--max_steps", "1")) == 1
            assert capsys.readouterr().err == (f"error: --checkpoint_dir {out} is in use by another training run "
                                               f"(pid {first.pid} on {socket.gethostname()}); wait for it to end, "
                                               "or choose another folder\n")
        wait_for(lambda: checkpoints(out), first)  # step 1 saved: interrupted while training step 2
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    err = first.stderr.read()
    first.stderr.close()
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (f"interrupted; its newest checkpoint is of step 1; resume with: python "
                                    f"{script('color_syncnet_train.py')[1]} --config {out / 'run.json'} --resume")
    assert not (out / "training.lock").exists() and temporaries(out) == []


def test_the_folder_of_a_killed_run_is_taken_over(corpus, tmp_path, capsys):
    out, lock = tmp_path / "run", tmp_path / "run" / "training.lock"
    kill_when(script("color_syncnet_train.py", *flags(corpus, out, "--max_steps", "5")),
              lambda: holds_lock(out) or checkpoints(out))
    held_by = lock.read_text().strip() if lock.exists() else "no lock at all"
    html = tmp_path / "expert.pth"
    html.write_text("<!DOCTYPE html><html>sign in</html>")
    assert cli.run(wav2lip_train.main, flags(corpus, out, "--syncnet_checkpoint_path", str(html), "--max_steps", "1")) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("error: ") and "is an HTML page" in printed.err  # past the lock, to the expert
    assert f"note: {lock} was left by a training run that ended without releasing it ({held_by}); taken over" \
        in printed.out
    assert not lock.exists()


def test_a_file_system_without_locks_is_said_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(folder_lock.fcntl, "flock", no_locks)
    assert folder_lock.hold(tmp_path) == (None, None)
    assert capsys.readouterr().err == (f"warning: {tmp_path / 'training.lock'}: cannot be locked (No locks available): "
                                       "a second run on this folder would not be refused\n")


def test_a_fresh_run_beside_another_run_s_checkpoints_is_refused_unless_start_over(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    others = {step: f"another run's step {step}".encode() for step in (1, 9)}
    for step, data in others.items():
        (out / f"checkpoint_step{step:09d}.pth").write_bytes(data)
    args = flags(corpus, out, "--max_steps", "1", "--keep_last", "1", hparams_=EVERY_STEP)
    assert cli.run(color_syncnet_train.main, args) == 1
    assert capsys.readouterr().err == (f"error: --checkpoint_dir {out} already holds another run's checkpoints "
                                       "(2 files, steps 1 to 9); pass --resume to continue that run, --start_over "
                                       "to train beside them, or choose another folder\n")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_step000000001.pth", "checkpoint_step000000009.pth"]

    # Beside them: its step 1 replaces the other run's (the same name) and --keep_last 1 keeps
    # it, the step it saved last, though the other run's step 9 is newer.
    assert color_syncnet_train.main([*args, "--start_over"]) == 0
    assert [p.name for p in checkpoints(out)] == ["checkpoint_step000000001.pth", "checkpoint_step000000009.pth"]
    run = read_checkpoint(out / "checkpoint_step000000001.pth")["run_id"]

    # Continued from its step 1 up to step 2, it replaces nothing of the other run: allowed. It
    # goes on under the same id, and prunes its own step 1, never the other run's step 9.
    resumed = flags(corpus, out, "--max_steps", "2", "--keep_last", "1", hparams_=EVERY_STEP)
    assert color_syncnet_train.main([*resumed, "--checkpoint_path", str(out / "checkpoint_step000000001.pth")]) == 0
    assert [p.name for p in checkpoints(out)] == ["checkpoint_step000000002.pth", "checkpoint_step000000009.pth"]
    assert read_checkpoint(out / "checkpoint_step000000002.pth")["run_id"] == run
    assert (out / "checkpoint_step000000009.pth").read_bytes() == others[9]

    # Up to step 10 it would replace the other run's step 9: refused.
    capsys.readouterr()
    further = flags(corpus, out, "--max_steps", "10", hparams_=EVERY_STEP)
    assert cli.run(color_syncnet_train.main, [*further, "--checkpoint_path", str(out / "checkpoint_step000000002.pth")]) == 1
    assert capsys.readouterr().err == (f"error: --checkpoint_dir {out} holds another run's checkpoints after step 2 "
                                       "(1 file, step 9) that this run would replace; pass --start_over to allow "
                                       "that, or choose another folder\n")
    assert not (out / "training.lock").exists()


def run_ids(folder):
    return {read_checkpoint(path)["global_step"]: read_checkpoint(path)["run_id"] for path in checkpoints(folder)}


def test_resuming_an_earlier_step_never_replaces_the_run_s_later_ones_unasked(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "3", hparams_=EVERY_STEP)) == 0
    saved = {path.name: path.read_bytes() for path in checkpoints(out)}
    earlier = flags(corpus, out, "--max_steps", "3", "--checkpoint_path", str(out / "checkpoint_step000000001.pth"),
                    hparams_=EVERY_STEP)
    capsys.readouterr()
    assert cli.run(color_syncnet_train.main, earlier) == 1
    assert capsys.readouterr().err == (f"error: --checkpoint_dir {out} holds this run's own checkpoints after step 1 "
                                       "(2 files, steps 2 to 3), which resuming from an earlier step would replace; "
                                       "resume from the newest (--resume), pass --start_over to allow that, or "
                                       "choose another folder\n")
    assert {path.name: path.read_bytes() for path in checkpoints(out)} == saved
    assert color_syncnet_train.main([*earlier, "--start_over"]) == 0
    assert {path.name for path in checkpoints(out)} == set(saved)
    assert len(set(run_ids(out).values())) == 1


def test_resume_continues_the_run_that_saved_last_not_an_older_run_s_later_steps(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "3", hparams_=EVERY_STEP)) == 0
    first = run_ids(out)[3]
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "1", "--start_over", hparams_=EVERY_STEP)) == 0
    second = run_ids(out)[1]
    assert run_ids(out) == {1: second, 2: first, 3: first}
    capsys.readouterr()
    resumed = flags(corpus, out, "--max_steps", "4", "--resume", hparams_=EVERY_STEP)
    assert cli.run(color_syncnet_train.main, resumed) == 1  # its step 2 would replace the first run's
    assert capsys.readouterr().err.startswith(f"error: --checkpoint_dir {out} holds another run's checkpoints after "
                                              "step 1 (2 files, steps 2 to 3)")
    assert color_syncnet_train.main([*resumed, "--start_over"]) == 0
    assert run_ids(out) == {1: second, 2: second, 3: second, 4: second}


def test_a_run_s_step_left_incomplete_is_redone_on_resume_not_refused(tmp_path):
    # A GAN run killed between the generator and the discriminator of step 3 resumes from step 2:
    # its own generator of step 3 is what it is to redo; a complete step 3 would be refused.
    names = {(prefix, step): f"{prefix}checkpoint_step{step:09d}.pth" for prefix in ("", "disc_") for step in (2, 3)}
    for key in [("", 2), ("disc_", 2), ("", 3)]:
        (tmp_path / names[key]).write_bytes(b"")
    record_run(tmp_path, list(names.values()), "mine")
    refuse_replacing_later_steps(tmp_path, ("", "disc_"), "mine", 2, None)
    (tmp_path / names[("disc_", 3)]).write_bytes(b"")
    with pytest.raises(UserError, match=r"holds this run's own checkpoints after step 2 \(2 files, step 3\)"):
        refuse_replacing_later_steps(tmp_path, ("", "disc_"), "mine", 2, None)


def test_a_diverging_run_is_one_line_and_never_saves_what_diverged(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    args = flags(corpus, out, "--max_steps", "4", hparams_=EVERY_STEP + ",syncnet_lr=1e30")
    assert cli.run(color_syncnet_train.main, args) == 1  # the reference: a traceback from the BCE at step 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: training diverged at step 2: a loss of expert SyncNet is no longer finite (NaN or Inf); its newest "
        f"checkpoint in {out} is of step 1; lower the learning rate (syncnet_lr=1e+30) with --hparams")
    assert steps_of(out) == [1]


def test_a_loss_that_is_not_finite_stops_a_run_unless_float16_scaling_skips_the_step():
    model = torch.nn.Linear(2, 1)
    objective = SimpleNamespace(session=SimpleNamespace(scaler=torch.amp.GradScaler("cpu", enabled=False)),
                                trained=lambda: [model], prefixes=("",), name="net", learning_rates=("syncnet_lr",),
                                config=SimpleNamespace(hparams={"syncnet_lr": 1e-4}))
    objective.session.checkpoint_dir = "nowhere"
    assert unless_diverged(objective, "step 3", lambda: {"loss": 0.5}) == {"loss": 0.5}
    with pytest.raises(UserError, match=r"^training diverged at step 3: a loss of net is no longer finite .* no "
                                        r"checkpoint was saved; lower the learning rate \(syncnet_lr="):
        unless_diverged(objective, "step 3", lambda: {"loss": math.inf})
    objective.session.scaler = torch.amp.GradScaler("cpu", enabled=True)
    assert math.isnan(unless_diverged(objective, "step 3", lambda: {"loss": math.nan})["loss"])  # a skipped step
    with torch.no_grad():
        model.weight[0, 0] = math.nan
    with pytest.raises(UserError, match="^training diverged at step 3"):
        unless_diverged(objective, "step 3", lambda: {"loss": math.nan})


def test_the_binary_cross_entropies_are_nan_where_torch_would_raise():
    probability = torch.tensor([[0.25], [0.75]])
    assert torch.equal(realness_loss(probability, True), F.binary_cross_entropy(probability, torch.ones(2, 1)))
    assert torch.equal(cosine_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[1]])),
                       F.binary_cross_entropy(torch.tensor([[2 ** -0.5]]), torch.ones(1, 1)))
    assert math.isnan(realness_loss(torch.tensor([[math.nan]]), True))
    assert math.isnan(cosine_loss(torch.tensor([[math.inf, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[1]])))


@pytest.mark.parametrize("main, hparam", [(color_syncnet_train.main, "syncnet_batch_size"),
                                           (wav2lip_train.main, "batch_size")])
def test_a_batch_size_beyond_the_machine_s_memory_is_one_line_before_any_work(corpus, tmp_path, capsys, main, hparam):
    expert = [] if hparam == "syncnet_batch_size" else ["--syncnet_checkpoint_path", str(corpus / "expert.pth")]
    args = flags(corpus, tmp_path / "run", *expert, hparams_=f"{hparam}=1000000000000,num_workers=1")
    assert cli.run(main, args) == 1
    samples = 4 * (15 * 48 * 96 + 80 * 16 + 1) if hparam == "syncnet_batch_size" else 4 * (45 * 96 * 96 + 6 * 80 * 16)
    held = 2 * 3 * 10 ** 12 * samples / 1e9  # two loaders, each with two batches per worker and one in use
    assert capsys.readouterr().err.startswith(f"error: batches of 1000000000000 samples with num_workers=1 hold "
                                              f"{held:.1f} GB of input at once, more than half of this machine's ")
    assert not list((tmp_path / "run").glob("*.pth"))


def test_keep_last_prunes_older_steps_of_the_run_s_own_alone(tmp_path):
    names = {step: f"checkpoint_step{step:09d}.pth" for step in (1, 2, 3, 4, 5, 8)}
    for name in names.values():
        (tmp_path / name).write_bytes(b"")
    record_run(tmp_path, [names[step] for step in (1, 2, 3, 8)], "mine")  # 8: before it was resumed from 2
    record_run(tmp_path, [names[4]], "theirs")  # and 5 in no record: the reference's, say
    prune(tmp_path, ("",), 1, "mine", 3)
    assert [p.name for p in checkpoints(tmp_path)] == [names[step] for step in (3, 4, 5, 8)]
    assert runs_of(tmp_path) == {names[3]: "mine", names[4]: "theirs", names[8]: "mine"}
    (tmp_path / RUNS_RECORD).write_text('{"runs": ')  # damaged by hand
    with pytest.raises(UserError, match=f"^{tmp_path / RUNS_RECORD} is damaged "):
        prune(tmp_path, ("",), 1, "mine", 4)
    assert len(checkpoints(tmp_path)) == 4


def test_the_gan_trainer_never_resumes_a_generator_and_a_discriminator_of_different_runs(corpus, tmp_path, capsys):
    out = tmp_path / "gan"
    generator, disc = out / "checkpoint_step000000003.pth", out / "disc_checkpoint_step000000003.pth"
    save_checkpoint(generator, seeded(Wav2Lip(), 1), global_step=3, run_id="a" * 16)
    save_checkpoint(disc, seeded(Wav2Lip_disc_qual(), 2), global_step=3, run_id="b" * 16)
    assert cli.run(hq_wav2lip_train.main, flags(corpus, out, "--syncnet_checkpoint_path", str(corpus / "expert.pth"),
                                                "--resume", "--max_steps", "4")) == 1
    assert capsys.readouterr().err == (f"error: {generator} and {disc} were saved by different training runs; resume "
                                       "a generator and a discriminator saved together (--checkpoint_path and "
                                       "--disc_checkpoint_path)\n")
    assert sorted(p.name for p in out.iterdir()) == sorted([generator.name, disc.name])


def test_a_pair_of_checkpoints_is_one_run_unless_their_ids_differ(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    check_same_run({a: "1", b: "1"})
    check_same_run({a: None, b: "1"})  # released checkpoints have no id: accepted, as ever
    check_same_run({a: "1", b: None})
    with pytest.raises(UserError, match=f"^{a} and {b} were saved by different training runs"):
        check_same_run({a: "1", b: "2"})


@pytest.mark.parametrize("flag, value, least", [("--max_steps", "0", 1), ("--eval_batches", "0", 1),
                                                ("--keep_last", "-1", 0), ("--log_interval", "0", 1)])
def test_trainer_flags_out_of_range_are_one_line_before_any_work(tmp_path, capsys, flag, value, least):
    out = tmp_path / "run"
    argv = ["--data_root", str(tmp_path), "--checkpoint_dir", str(out), "--device", "cpu", flag, value]
    assert cli.run(color_syncnet_train.main, argv) == 1
    assert capsys.readouterr().err == f"error: {flag} must be at least {least}, not {value}\n"
    assert not out.exists()


def test_hparams_out_of_range_are_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--data_root", str(tmp_path), "--checkpoint_dir", str(out), "--device", "cpu", "--hparams", "batch_size=0"]
    assert cli.run(wav2lip_train.main, [*argv, "--syncnet_checkpoint_path", "unused.pth"]) == 1
    assert capsys.readouterr().err == "error: --hparams: batch_size must be a whole number above 0, not 0\n"
    assert not out.exists()
