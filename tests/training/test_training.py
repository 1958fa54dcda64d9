"""The three trainers on a tiny synthetic corpus: steps, checkpoints, resume, the syncnet_wt switch, torchrun."""

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import types

import cv2
import pytest
import torch
from conftest import ROOT
from support.confined import (
    ENV,
    FULL_DISK,
    in_namespace,
    kill_when,
    one_line_error,
    script,
    temporaries,
)
from support.synthetic_weights import save_released, seeded

import color_syncnet_train
import hq_wav2lip_train
import wav2lip_train
from hparams import hparams
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import load_weights, read_checkpoint
from models.inputs import stack_lower_halves
from system import cli
from training import objectives
from training.checkpoints import checkpoints, complete_steps, resume_paths
from training.command_line import parse_config
from training.losses import cosine_loss, generator_loss, sync_accuracy
from training.objectives import (
    ExpertObjective,
    GANGeneratorObjective,
    GeneratorObjective,
)
from training.session import Session
from training.synthetic_data import make_corpus

FAST = "num_workers=0,syncnet_batch_size=4,batch_size=2,syncnet_checkpoint_interval=2,checkpoint_interval=2,"\
       "syncnet_eval_interval=2,eval_interval=2"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, "preprocessed", speakers=6, clips=1, seconds=1.2, seed=3)
    save_released(seeded(SyncNet_color(), 1), root / "expert.pth")
    return root


@contextlib.contextmanager
def hparams_kept():
    """The trainers set hparams from --hparams: put them back afterwards."""
    saved = hparams.values()
    try:
        yield
    finally:
        for name, value in saved.items():
            hparams.set_hparam(name, value)


@pytest.fixture(autouse=True)
def restore_hparams():
    with hparams_kept():
        yield


def flags(corpus, checkpoint_dir, *extra, hparams_=FAST):
    return ["--data_root", str(corpus), "--filelist_dir", str(corpus / "filelists"), "--checkpoint_dir",
            str(checkpoint_dir), "--eval_batches", "1", "--hparams", hparams_, "--device", "cpu", "--quiet", *extra]


def steps_of(folder, prefix=""):
    return [read_checkpoint(path)["global_step"] for path in checkpoints(folder, prefix)]


def test_expert_trains_checkpoints_and_resumes(corpus, tmp_path, capsys):
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "3", "--keep_last", "2")) == 0
    assert steps_of(out) == [2, 3]  # step 1 and 2 were saved, --keep_last 2 removed step 1
    summary = capsys.readouterr().out
    assert "trained steps 0..3 (3 steps" in summary and "last evaluation: loss" in summary
    assert ", sync_accuracy " in summary  # beside each evaluation loss: the share of pairs classified right
    assert "syncnet_batch_size=4*" in summary and "syncnet_lr=0.0001," in summary  # the effective hyper-parameters
    state = read_checkpoint(out / "checkpoint_step000000003.pth")
    # The released four keys, and the hyper-parameters and configuration it was trained with (readers of
    # the released format ignore them).
    assert sorted(state) == ["config", "face_size", "global_epoch", "global_step", "hparams", "optimizer", "run_id",
                             "state_dict"]
    assert state["hparams"] == hparams.values() and state["hparams"]["syncnet_batch_size"] == 4
    assert state["optimizer"]["state"] and state["global_epoch"] == 2  # 4 training clips, batch 4: an epoch a step
    load_weights(SyncNet_color(), out / "checkpoint_step000000003.pth")  # the released layout, strictly

    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "5", "--resume", hparams_=FAST + ",syncnet_lr=2e-4")) == 0
    resumed_output = capsys.readouterr().out
    assert "resuming from" in resumed_output and "hyper-parameters differ from checkpoint_step000000003.pth's: " \
        "syncnet_lr: 0.0001 -> 0.0002" in resumed_output
    # Resumed without --keep_last 2: said; not --resume or --max_steps, which a resume changes, nor syncnet_lr again.
    assert "note: training settings differ from checkpoint_step000000003.pth's: keep_last: 2 -> 0\n" in resumed_output
    resumed = read_checkpoint(out / "checkpoint_step000000005.pth")
    assert resumed["global_step"] == 5 and resumed["global_epoch"] == 4  # an epoch a step, as without the break
    assert resumed["optimizer"]["state"][0]["step"].item() == 5  # Adam's step count went on from 3

    assert cli.run(color_syncnet_train.main, flags(corpus, out, "--max_steps", "5", "--resume")) == 1
    assert "already at --max_steps 5" in capsys.readouterr().err


def test_the_run_s_configuration_is_in_every_checkpoint_and_in_run_json(corpus, tmp_path, capsys):
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--seed", "4321", "--max_steps", "1",
                                          hparams_=FAST + ",syncnet_lr=0.00017")) == 0
    config = read_checkpoint(out / "checkpoint_step000000001.pth")["config"]
    assert config["seed"] == 4321 and config["hparams"]["syncnet_lr"] == 0.00017
    assert json.loads((out / "run.json").read_text()) == config
    assert sorted(config) == sorted([
        "objective", "data_root", "filelist_dir", "filelists_from_data_root", "min_confidence", "sync_corrections",
        "sync_corrections_sha256", "checkpoint_dir", "checkpoint_path",
        "disc_checkpoint_path", "syncnet_checkpoint_path", "resume", "start_over", "max_steps", "eval_batches",
        "keep_last", "log_interval", "seed", "amp", "device", "quiet", "world_size", "constants", "hparams"])
    assert (config["objective"], config["filelist_dir"], config["amp"], config["eval_batches"], config["max_steps"]) == \
        ("expert SyncNet", str(corpus / "filelists"), "auto", 1, 1)
    assert config["constants"] == {"eval_batches": 1400, "evaluate_first_step": False, "adam_betas": [0.9, 0.999],
                                   "infonce_temperature": 0.1}
    assert config["hparams"] == hparams.values()

    # Resumed with other settings: each one named (not --resume or --max_steps, which a resume changes).
    capsys.readouterr()
    assert color_syncnet_train.main(flags(corpus, out, "--seed", "7", "--log_interval", "10", "--max_steps", "2",
                                          "--resume", hparams_=FAST + ",syncnet_lr=0.00017")) == 0
    assert "note: training settings differ from checkpoint_step000000001.pth's: log_interval: 50 -> 10, " \
        "seed: 4321 -> 7\n" in capsys.readouterr().out
    resumed = read_checkpoint(out / "checkpoint_step000000002.pth")["config"]
    assert (resumed["seed"], resumed["resume"]) == (7, True) and json.loads((out / "run.json").read_text()) == resumed


def test_expert_runs_under_cpu_mixed_precision(corpus, tmp_path):
    out = tmp_path / "amp"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "1", "--amp", "on")) == 0
    assert torch.isfinite(read_checkpoint(out / "checkpoint_step000000001.pth")["state_dict"]["face_encoder.0.conv_block.0.weight"]).all()


class TinySync(torch.nn.Module):
    """The expert's interface ((mel, faces) -> unit embeddings) on a few channels: float16
    backward passes on the CPU take ~200x float32's time (40 s for one real expert step)."""

    def __init__(self):
        super().__init__()
        self.audio, self.face = torch.nn.Conv2d(1, 8, 3, stride=4), torch.nn.Conv2d(15, 8, 3, stride=4)

    def forward(self, mel, faces):
        embed = lambda x: torch.nn.functional.normalize(torch.relu(x).flatten(1)[:, :64], dim=1)  # noqa: E731
        return embed(self.audio(mel)), embed(self.face(faces))


def test_a_training_step_under_fp16_autocast_with_a_grad_scaler(tmp_path):
    """--amp fp16 (what --amp on is on a CUDA GPU without fast bf16), run on the CPU: the
    expert's train_step under float16 autocast, the loss scaled, overflowing steps skipped
    and the scale halved until the steps fit, as torch.amp.GradScaler does on a GPU."""
    config = parse_config(ExpertObjective, color_syncnet_train.build_parser,
                          ["--data_root", str(tmp_path), "--checkpoint_dir", str(tmp_path), "--device", "cpu",
                           "--amp", "fp16", "--quiet"])
    session = Session(config)
    assert session.amp_dtype == torch.float16 and session.scaler.is_enabled()
    expert = objectives.ExpertObjective.__new__(objectives.ExpertObjective)
    torch.manual_seed(7)  # weights whose first steps overflow at 2^16 (the test alone starts from a random seed)
    expert.session, expert.model, expert.contrastive = session, TinySync(), False
    expert.optimizer = torch.optim.Adam(expert.model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(4, 15, 48, 96, generator=g), torch.rand(4, 1, 80, 16, generator=g), torch.tensor([[1.0], [0], [1], [0]]))
    with session.autocast():
        assert all(e.dtype == torch.float16 for e in expert.model(batch[1], batch[0]))
    # From 2^16 the scaled float16 gradients overflow: each such step is skipped (the weights
    # stay) and the scale halves, until a scale fits and the steps go through.
    scales, stepped = [], []
    for _ in range(12):
        before = {k: v.clone() for k, v in expert.model.state_dict().items()}
        assert math.isfinite(expert.train_step(batch)["loss"])
        stepped.append(any(not torch.equal(before[k], v) for k, v in expert.model.state_dict().items()))
        scales.append(session.scaler.get_scale())
    first = stepped.index(True)
    assert first > 0 and not any(stepped[:first]) and all(stepped[first:])
    assert scales[:first] == [65536.0 / 2 ** (k + 1) for k in range(first)]  # halved at each skipped step
    assert set(scales[first:]) == {scales[first - 1]}  # then kept


def test_generator_trains_writes_samples_and_resumes_syncnet_wt(corpus, tmp_path, monkeypatch):
    out = tmp_path / "wav2lip"
    monkeypatch.setattr(objectives, "SYNC_LOSS_THRESHOLD", 100.0)  # the first evaluation raises syncnet_wt
    args = flags(corpus, out, "--syncnet_checkpoint_path", str(corpus / "expert.pth"), "--max_steps", "2")
    assert wav2lip_train.main(args) == 0
    state = read_checkpoint(out / "checkpoint_step000000002.pth")
    assert state["global_step"] == 2 and state["syncnet_wt"] == 0.01
    load_weights(Wav2Lip(), out / "checkpoint_step000000002.pth")  # inference.py loads it
    collage = cv2.imread(str(out / "samples_step000000000" / "1_4.jpg"))
    assert collage.shape == (96, 4 * 96, 3)  # reference | masked input | generated | target

    monkeypatch.setattr(objectives, "SYNC_LOSS_THRESHOLD", -1.0)  # would never switch again
    args[args.index("2", args.index("--max_steps"))] = "3"
    assert wav2lip_train.main([*args, "--resume"]) == 0
    assert read_checkpoint(out / "checkpoint_step000000003.pth")["syncnet_wt"] == 0.01  # restored, not re-derived

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/l1", "train/sync", "eval/sync", "eval/l1", "train/syncnet_wt", "eval/sync_accuracy",
            "eval/truth_sync", "train/learning_rate"} <= set(events.Tags()["scalars"])
    accuracy = [event.value for event in events.Scalars("eval/sync_accuracy")]
    assert accuracy and all(0 <= value <= 1 for value in accuracy)
    assert "samples" in events.Tags()["images"]
    assert any(tag.startswith("hparams") for tag in events.Tags()["tensors"])  # the hyper-parameters, as text


def test_the_syncnet_wt_switch_follows_the_evaluation_sync_loss():
    generator = GeneratorObjective.__new__(GeneratorObjective)
    generator.syncnet_wt = 0.0
    generator.after_evaluation({"sync": 0.80, "l1": 0.1}, 3000)
    assert generator.syncnet_wt == 0.0
    note = generator.after_evaluation({"sync": 0.74, "l1": 0.1}, 6000)
    assert generator.syncnet_wt == 0.01
    assert note == " (the reference's targets: sync ~0.2; its expert scores the truth ~0.25)"
    gan = GANGeneratorObjective.__new__(GANGeneratorObjective)
    gan.syncnet_wt = 0.0
    gan.after_evaluation({"sync": 0.7}, 3000)
    assert gan.syncnet_wt == 0.03
    generator.syncnet_wt = 0.03  # set higher from the start with --hparams: the switch does not lower it
    generator.after_evaluation({"sync": 0.5, "l1": 0.1}, 9000)
    assert generator.syncnet_wt == 0.03


def test_an_expert_at_chance_for_the_configured_steps_is_warned_about_once():
    """Within 0.02 of ln 2 at every evaluation for syncnet_chance_warning_steps steps: one
    warning, with the causes and the audit's command; an evaluation away from chance restarts
    the count."""
    expert = ExpertObjective.__new__(ExpertObjective)
    expert.config = types.SimpleNamespace(data_root="lrs2_preprocessed")
    expert.chance_steps, expert.learning_since, expert.warned = 20000, 0, False
    target = " (the reference's target: loss ~0.25)"
    assert expert.after_evaluation({"loss": 0.6931}, 10000) == target
    assert expert.after_evaluation({"loss": 0.64}, 20000) == target  # 0.053 from chance: learning
    assert expert.after_evaluation({"loss": 0.71}, 30000) == target
    assert expert.after_evaluation({"loss": 0.68}, 39999) == target  # 19999 steps at chance since step 20000
    note = expert.after_evaluation({"loss": 0.695}, 40000)
    assert note.startswith(target + "\nwarning: the expert's evaluation loss has stayed within 0.02 of chance "
                                    "(0.693) from step 20000 to step 40000: it has learnt nothing yet.")
    assert "python sync_audit.py --data_root lrs2_preprocessed --syncnet_checkpoint_path" in note
    assert "out of sync" in note and "frame rate" in note and "too few speakers" in note
    assert expert.after_evaluation({"loss": 0.693}, 50000) == target  # said once


def test_sync_accuracy_is_the_share_classified_right_at_cosine_one_half():
    audio = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    faces = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 2.0]])  # cosines 1, 0.707, 0, 0.447
    labels = torch.tensor([[1.0], [0.0], [0.0], [1.0]])  # right, wrong, right, wrong
    assert sync_accuracy(audio, faces, labels).item() == 0.5
    assert sync_accuracy(audio, faces, 1 - labels).item() == 0.5
    assert sync_accuracy(audio, faces, torch.tensor([[1.0], [1.0], [0.0], [0.0]])).item() == 1.0


def test_the_losses_are_the_references():
    a = torch.tensor([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0]])
    v = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0]])
    loss = cosine_loss(a, v, torch.tensor([[1.0], [0.0]]))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # identical for label 1, orthogonal for label 0
    faces = torch.arange(2 * 3 * 5 * 4 * 2, dtype=torch.float32).reshape(2, 3, 5, 4, 2)
    halves = stack_lower_halves(faces)
    assert halves.shape == (2, 15, 2, 2)
    assert torch.equal(halves[:, 3:6], faces[:, :, 1, 2:])  # frame 1's colour channels, lower rows


@pytest.fixture(scope="module")
def gan_two_steps(corpus, tmp_path_factory):
    """Two steps of the GAN trainer and what it printed, computed as the subprocesses of the
    kill test compute them (on one thread), so that their checkpoints can be compared bit for bit."""
    out, printed = tmp_path_factory.mktemp("gan") / "hq", io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with hparams_kept(), contextlib.redirect_stderr(printed):
            assert hq_wav2lip_train.main(flags(corpus, out, "--syncnet_checkpoint_path", str(corpus / "expert.pth"),
                                               "--max_steps", "2")) == 0
    finally:
        torch.set_num_threads(threads)
    return out, printed.getvalue()


def test_gan_trainer_checkpoints_both_networks_and_resumes_them(corpus, gan_two_steps, tmp_path, capsys):
    out, printed = gan_two_steps
    assert steps_of(out) == [1, 2] and steps_of(out, "disc_") == [1, 2]
    load_weights(Wav2Lip_disc_qual(), out / "disc_checkpoint_step000000002.pth")
    assert "disc_fake" in printed  # the evaluation at step 2 reports the discriminator

    disc_state = read_checkpoint(out / "disc_checkpoint_step000000002.pth")
    resumed = tmp_path / "resumed"
    assert hq_wav2lip_train.main([*flags(corpus, resumed, "--syncnet_checkpoint_path", str(corpus / "expert.pth"),
                                         "--max_steps", "3"),
                                  "--checkpoint_path", str(out / "checkpoint_step000000002.pth"),
                                  "--disc_checkpoint_path", str(out / "disc_checkpoint_step000000002.pth")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("resuming from") == 2  # each network's checkpoint, but their common notes once
    assert printed.count("note: training settings differ from checkpoint_step000000002.pth's: checkpoint_dir: ") == 1
    assert "differ from disc_checkpoint" not in printed
    after = read_checkpoint(resumed / "disc_checkpoint_step000000003.pth")
    assert after["global_step"] == 3
    assert after["optimizer"]["param_groups"][0]["betas"] == (0.5, 0.999)
    assert not torch.equal(after["state_dict"]["binary_pred.0.weight"], disc_state["state_dict"]["binary_pred.0.weight"])


def test_bad_inputs_get_one_line(corpus, tmp_path, capsys):
    html = tmp_path / "expert.pth"
    html.write_text("<!DOCTYPE html><html>sign in</html>")
    args = flags(corpus, tmp_path / "out", "--syncnet_checkpoint_path", str(html), "--max_steps", "1")
    assert cli.run(wav2lip_train.main, args) == 1
    assert "is an HTML page" in capsys.readouterr().err
    wrong = flags(corpus, tmp_path / "out", "--syncnet_checkpoint_path", str(corpus / "expert.pth"),
                  "--checkpoint_path", str(corpus / "expert.pth"), "--max_steps", "1")
    assert cli.run(wav2lip_train.main, wrong) == 1
    assert "is a checkpoint of the expert lip-sync SyncNet" in capsys.readouterr().err
    no_lists = flags(corpus, tmp_path / "out", "--max_steps", "1")
    no_lists[no_lists.index("--filelist_dir") + 1] = str(tmp_path)
    assert cli.run(color_syncnet_train.main, no_lists) == 1
    assert "no filelist" in capsys.readouterr().err


def test_two_process_torchrun_trains_one_model(corpus, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
               str(ROOT / "color_syncnet_train.py"), *flags(corpus, out, "--max_steps", "3")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("trained steps 0..3") == 1  # rank 0 alone reports
    assert "batch 4 x 2 process(es)" in result.stdout
    assert steps_of(out) == [1, 2, 3]  # one set of checkpoints, from rank 0
    assert len(list((out / "tensorboard").iterdir())) == 1


# --- failures: kill -9, a full disk, a read-only folder ----------------------------------------

def same_state(a, b):
    """Two checkpoints hold the same step, epoch, syncnet_wt, weights and optimiser state, bit for bit."""
    assert (a["global_step"], a["global_epoch"], a.get("syncnet_wt")) == (b["global_step"], b["global_epoch"], b.get("syncnet_wt"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    states = a["optimizer"]["state"], b["optimizer"]["state"]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert all(torch.equal(states[0][key][name], states[1][key][name]) for name in states[0][key])


def test_a_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert color_syncnet_train.main(flags(corpus, straight, "--max_steps", "6")) == 0
    assert color_syncnet_train.main(flags(corpus, broken, "--max_steps", "3")) == 0  # mid-interval
    assert color_syncnet_train.main(flags(corpus, broken, "--max_steps", "6", "--resume")) == 0
    same_state(read_checkpoint(straight / "checkpoint_step000000006.pth"),
               read_checkpoint(broken / "checkpoint_step000000006.pth"))


def test_the_gan_trainer_killed_while_saving_resumes_from_a_step_both_networks_have(corpus, gan_two_steps, tmp_path):
    straight, killed = gan_two_steps[0], tmp_path / "killed"
    common = ["--syncnet_checkpoint_path", corpus / "expert.pth", "--max_steps", "2"]

    def saving_disc_step_2():  # the generator's step-2 checkpoint is written, the discriminator's is not yet
        return any(p.name.startswith(".disc_checkpoint_step000000002.pth.") for p in temporaries(killed))

    kill_when(script("hq_wav2lip_train.py", *flags(corpus, killed, *map(str, common))), saving_disc_step_2)
    assert steps_of(killed) == [1, 2] and steps_of(killed, "disc_") == [1]
    assert resume_paths(killed, ("", "disc_")) == {"": killed / "checkpoint_step000000001.pth",
                                                   "disc_": killed / "disc_checkpoint_step000000001.pth"}
    resumed = subprocess.run(script("hq_wav2lip_train.py", *flags(corpus, killed, *map(str, common), "--resume")),
                             capture_output=True, text=True, env=ENV, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "step 1," in resumed.stdout
    assert temporaries(killed) == []
    for prefix in ("", "disc_"):
        same_state(read_checkpoint(straight / f"{prefix}checkpoint_step000000002.pth"),
                   read_checkpoint(killed / f"{prefix}checkpoint_step000000002.pth"))


def test_keep_last_never_removes_the_last_complete_step(tmp_path):
    for name in ["checkpoint_step000000002.pth", "disc_checkpoint_step000000002.pth", "checkpoint_step000000004.pth",
                 "disc_checkpoint_step000000004.pth", "checkpoint_step000000006.pth"]:  # killed before disc 6
        (tmp_path / name).write_bytes(b"")
    assert complete_steps(tmp_path, ["", "disc_"]) == [2, 4]
    assert resume_paths(tmp_path, ("", "disc_"))["disc_"].name == "disc_checkpoint_step000000004.pth"
    for name in ["checkpoint_step000000002.pth", "checkpoint_step000000004.pth"]:
        (tmp_path / name).unlink()
    with pytest.raises(cli.UserError, match=r"no step .* has a checkpoint of every network \(generator: steps \[6\]; "
                                            r"discriminator: steps \[2, 4\]\)"):
        resume_paths(tmp_path, ("", "disc_"))
    assert resume_paths(tmp_path / "empty", ("",)) == {}


def test_a_full_checkpoint_disk_is_one_line(corpus, tmp_path):
    # (A read-only checkpoint folder: tests/project/test_failure_behaviour.py, for every trainer.)
    out = tmp_path / "checkpoints"
    args = flags(corpus, out, "--max_steps", "2")
    result = in_namespace(FULL_DISK + ' && "$PY" "$ROOT/color_syncnet_train.py" "$@"', out, *args, size="8m")
    line = one_line_error(result)
    assert line.startswith("error: no space left on the device of ") and str(out) in line, line


def test_data_loader_workers_start_while_another_thread_holds_a_lock(tmp_path):
    """The Python 3.12 hang: a DataLoader worker forked while a thread of the trainer held a
    lock waits for that lock forever. Spawned workers start clean."""
    import threading

    from support import held_lock

    from training.batches import data_loader

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("".join(f"v/c{k}\n" for k in range(8)))
    for k in range(8):  # entries that name no folder are left out
        (tmp_path / "v" / f"c{k}").mkdir(parents=True)
    config = parse_config(ExpertObjective, color_syncnet_train.build_parser,
                          ["--data_root", str(tmp_path), "--filelist_dir", str(tmp_path / "lists"), "--checkpoint_dir",
                           str(tmp_path / "unused"), "--seed", "0", "--hparams", "num_workers=2"])
    session = types.SimpleNamespace(rank=0, world_size=1, distributed=False, device=torch.device("cpu"), is_main=True)
    loader = data_loader(held_lock.NeedsTheLock, "train", config, 2, session)

    release, batches = threading.Event(), []
    holder = threading.Thread(target=lambda: held_lock.LOCK.acquire() and release.wait(120))
    holder.start()
    try:
        fetch = threading.Thread(target=lambda: batches.append(next(iter(loader))), daemon=True)
        fetch.start()
        fetch.join(timeout=90)
        assert batches, "the DataLoader's workers hung on a lock held when they started"
    finally:
        release.set()
        holder.join()
        held_lock.LOCK.release()
    assert batches[0][0].flatten().tolist() == [0.0, 1.0]  # step 0's sample numbers


def test_spawned_data_loader_workers_see_the_run_s_hyper_parameters(tmp_path):
    # A spawned worker imports hparams.py afresh: without the run's values it would cut audio
    # windows at the default fps and compute mels at the default rate, silently.

    from support.hparams_probe import SaysHparams

    from training.batches import data_loader

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("".join(f"v/c{k}\n" for k in range(2)))
    for k in range(2):
        (tmp_path / "v" / f"c{k}").mkdir(parents=True)
    config = parse_config(ExpertObjective, color_syncnet_train.build_parser,
                          ["--data_root", str(tmp_path), "--filelist_dir", str(tmp_path / "lists"), "--checkpoint_dir",
                           str(tmp_path / "unused"), "--hparams", "num_workers=1,fps=30,sample_rate=22050,num_mels=64"])
    session = types.SimpleNamespace(rank=0, world_size=1, distributed=False, device=torch.device("cpu"), is_main=True)
    values, _ = next(iter(data_loader(SaysHparams, "train", config, 2, session)))
    assert values.tolist() == [[30.0, 22050.0, 64.0]] * 2


def reference_generator_gradients(model, expert, disc, batch, syncnet_wt, disc_wt):
    """The reference trainers' generator loss, written out as they write it: the sync loss,
    then the adversarial loss (hq only), then L1, summed with the weights; the gradients."""
    faces, frame_mels, mel, target = batch
    model.zero_grad(set_to_none=True)
    g = model(frame_mels, faces)
    lower = g[:, :, :, g.size(3) // 2:]
    lower = torch.cat([lower[:, :, i] for i in range(lower.size(2))], dim=1)
    a, v = expert(mel, lower)
    d = torch.nn.functional.cosine_similarity(a, v)
    sync_loss = torch.nn.BCELoss()(d.unsqueeze(1), torch.ones(len(g), 1))
    if disc is not None:
        prediction = disc(g)
        perceptual_loss = torch.nn.functional.binary_cross_entropy(prediction, torch.ones((len(prediction), 1)))
        loss = syncnet_wt * sync_loss + disc_wt * perceptual_loss + (1. - syncnet_wt - disc_wt) * torch.nn.L1Loss()(g, target)
    else:
        loss = syncnet_wt * sync_loss + (1 - syncnet_wt) * torch.nn.L1Loss()(g, target)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("objective_class", [GeneratorObjective, GANGeneratorObjective])
def test_generator_gradients_equal_the_references_bit_for_bit(objective_class):
    import contextlib
    torch.manual_seed(0)
    model, expert, disc = seeded(Wav2Lip(), 4), seeded(SyncNet_color(), 5), seeded(Wav2Lip_disc_qual(), 6)
    batch = (torch.rand(2, 6, 5, 96, 96), torch.rand(2, 5, 1, 80, 16) - 0.5, torch.rand(2, 1, 80, 16) - 0.5,
             torch.rand(2, 3, 5, 96, 96))
    gan = objective_class is GANGeneratorObjective
    objective = objective_class.__new__(objective_class)
    objective.session = types.SimpleNamespace(autocast=contextlib.nullcontext)
    objective.model, objective.expert, objective.syncnet_wt = model, expert, 0.03
    if gan:
        objective.disc, objective.disc_wt = disc, hparams.disc_wt
    _, losses = objective.generator_losses(*batch)
    generator_loss(losses, objective.syncnet_wt, objective.disc_wt).backward()
    ours = {name: p.grad.clone() for name, p in model.named_parameters()}
    expected = reference_generator_gradients(model, expert, disc if gan else None, batch, 0.03, hparams.disc_wt)
    assert all(torch.equal(ours[name], expected[name]) for name in expected)


def test_without_filelists_the_corpus_own_are_used_and_said(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no filelists/ here
    argv = flags(corpus, tmp_path / "expert", "--max_steps", "1")
    del argv[argv.index("--filelist_dir"):argv.index("--filelist_dir") + 2]
    assert color_syncnet_train.main(argv) == 0
    assert f"no filelists/train.txt: using the filelists in {corpus / 'filelists'}" in capsys.readouterr().out


def test_an_evaluation_shows_its_progress(capsys):

    from training.loop import evaluate

    batches_ = [(torch.zeros(1), torch.zeros(1)) for _ in range(3)]
    objective = types.SimpleNamespace(set_train=lambda mode: None, eval_step=lambda batch: {"loss": 2.0})
    session = types.SimpleNamespace(quiet=False, device=torch.device("cpu"),
                                    all_mean=lambda totals: {k: s / n for k, (s, n) in totals.items()})
    assert evaluate(objective, batches_, session) == {"loss": 2.0}
    shown = capsys.readouterr().err
    assert "evaluation:" in shown and "0/3 [" in shown  # a bar with its total, so tqdm shows an ETA


def test_infonce_is_cross_entropy_over_the_batch_plus_the_references_bce_of_each_pair():
    """Against a computation written out with NumPy: each audio picks its in-sync face among
    the batch's in-sync and shifted faces (and each in-sync face its audio), at cosine / 0.1;
    plus the cosine BCE of the in-sync (label 1) and shifted (label 0) pairs."""
    import numpy as np

    from training.losses import infonce_loss

    g = torch.Generator().manual_seed(0)
    audio, faces, shifted = (torch.rand(4, 8, generator=g) for _ in range(3))
    a, f, s = (x.numpy().astype(np.float64) for x in (audio, faces, shifted))
    a, f, s = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, f, s))

    def cross_entropy(logits):  # row i's target is column i
        logits = logits - logits.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits)))

    contrastive = (cross_entropy(a @ np.concatenate([f, s]).T / 0.1) + cross_entropy(f @ a.T / 0.1)) / 2
    cos_in, cos_off = (a * f).sum(1), (a * s).sum(1)
    bce = -np.mean(np.concatenate([np.log(cos_in), np.log(1 - cos_off)]))
    assert infonce_loss(audio, faces, shifted).item() == pytest.approx(contrastive + bce, rel=1e-5)


def test_an_infonce_expert_trains_and_serves_the_generator_unchanged(corpus, tmp_path, capsys):
    """expert_loss=infonce: the expert trains on in-sync and shifted windows of each clip, is
    evaluated on the reference's pairs (its loss and sync accuracy comparable with BCE's), and
    its checkpoint is the released layout, the generator's frozen expert as any other."""
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "2", hparams_=FAST + ",expert_loss=infonce")) == 0
    summary = capsys.readouterr().out
    assert "last evaluation: loss" in summary and ", sync_accuracy " in summary
    state = read_checkpoint(out / "checkpoint_step000000002.pth")
    assert state["hparams"]["expert_loss"] == "infonce" and state["config"]["constants"]["infonce_temperature"] == 0.1
    load_weights(SyncNet_color(), out / "checkpoint_step000000002.pth")  # the released layout, strictly
    assert wav2lip_train.main(flags(corpus, tmp_path / "generator", "--max_steps", "1", "--syncnet_checkpoint_path",
                                    str(out / "checkpoint_step000000002.pth"))) == 0
    assert cli.run(color_syncnet_train.main, flags(corpus, tmp_path / "x", hparams_=FAST + ",expert_loss=ranking")) == 1
    assert "expert_loss must be bce or infonce, not ranking" in capsys.readouterr().err
