"""python -m training.report: a run's TensorBoard logs -> one picture and a one-screen summary."""

import errno
import os
import re
import subprocess
import sys

import cv2
import pytest
from conftest import ROOT
from support.confined import ENV, READ_ONLY, in_namespace, one_line_error
from test_training import corpus, flags  # noqa: F401 - corpus: a fixture
from torch.utils.tensorboard import SummaryWriter

import color_syncnet_train
from system import cli
from training import report

T0 = 1_700_000_000.0


def write_run(folder, scalars):
    """One run's event file in ``folder``/tensorboard, as the trainers write it: {tag: [(step, value, walltime)]}."""
    writer = SummaryWriter(folder / "tensorboard")
    for tag, points in scalars.items():
        for step, value, walltime in points:
            writer.add_scalar(tag, value, step, walltime=walltime)
    writer.close()


def summary_of(folder, capsys, *extra):
    assert report.main([str(folder), *extra]) == 0
    return capsys.readouterr().out


def assert_picture(path):
    image = cv2.imread(str(path))
    assert image is not None, path
    height, width, _ = image.shape
    assert width >= 600 and height >= 300
    assert image.std() > 20 and len({tuple(pixel) for pixel in image.reshape(-1, 3)[::7]}) > 20  # curves drawn


def test_an_expert_run_s_summary_and_picture(tmp_path, capsys):
    # Logged every 100 steps at 2 steps/s; no steps_per_second logged: timed from the wall times.
    write_run(tmp_path, {
        "train/loss": [(step, 0.7 - step / 2000, T0 + step / 2) for step in range(100, 600, 100)],
        "train/skipped_samples": [(step, 0, T0 + step / 2) for step in range(100, 600, 100)],
        "eval/loss": [(200, 0.6, T0 + 100), (400, 0.41, T0 + 200), (500, 0.45, T0 + 250)]})
    lines = summary_of(tmp_path, capsys).splitlines()
    assert lines[0] == f"expert SyncNet in {tmp_path}: steps 100..500 logged, 1 run(s), 3.3 min of training logged"
    assert lines[1:] == [
        "  eval/loss   best 0.4100 at step 400, last 0.4500 at step 500",
        "  train/loss  last 0.4500 at step 500",
        "speed: 2 steps/s (0.5 s/step) at step 500; 2 steps/s over the run",
        "expert eval loss: best 0.4100 at step 400; the reference's target ~0.25: not yet (chance 0.693)",
        f"picture: {tmp_path / 'report.png'}"]
    assert_picture(tmp_path / "report.png")
    assert [title for title, _, _ in report.panels(report.read_logs(report.event_files(tmp_path))[0])] == \
        ["expert: sync loss (BCE)"]


def test_a_resumed_gan_run_joins_its_runs_in_step_order(tmp_path, capsys):
    # Run 1 logged steps 100..300 and was stopped; run 2 resumed from the checkpoint of step 200,
    # trained steps 201..400 again. Its file is written first here: the wall times order the runs.
    gan = {"train/perceptual": 0.69, "train/disc_real": 0.6, "train/disc_fake": 0.7, "train/l1": 0.05,
           "train/syncnet_wt": 0.03}
    write_run(tmp_path, {
        **{tag: [(300, value, T0 + 1000), (400, value, T0 + 1050)] for tag, value in gan.items()},
        "train/steps_per_second": [(300, 2.5, T0 + 1000), (400, 3.0, T0 + 1050)],
        "eval/sync": [(300, 0.6, T0 + 1000), (400, 0.15, T0 + 1050)],
        "eval/l1": [(300, 0.04, T0 + 1000), (400, 0.03, T0 + 1050)]})
    write_run(tmp_path, {
        **{tag: [(100, value, T0), (200, value, T0 + 100), (300, value, T0 + 200)] for tag, value in gan.items()},
        "train/steps_per_second": [(100, 1.0, T0), (200, 1.0, T0 + 100), (300, 1.0, T0 + 200)],
        "train/syncnet_wt": [(100, 0.0, T0), (200, 0.03, T0 + 100), (300, 0.03, T0 + 200)],  # raised at step 200
        "eval/sync": [(100, 0.9, T0), (200, 0.7, T0 + 100), (300, 0.1, T0 + 200)],  # 0.1: redone by run 2
        "eval/l1": [(100, 0.06, T0), (200, 0.05, T0 + 100), (300, 0.01, T0 + 200)]})
    out = tmp_path / "pictures" / "gan.png"
    out.parent.mkdir()
    text = summary_of(tmp_path, capsys, "--out", str(out))
    assert text.startswith(f"Wav2Lip + visual-quality GAN in {tmp_path}: steps 100..400 logged, 2 run(s), "
                           "2.5 min of training logged\n")  # 100 s of run 1 (to step 200), 50 s of run 2
    assert "\n  eval/sync         best 0.1500 at step 400, last 0.1500 at step 400\n" \
        "  eval/l1           best 0.0300 at step 400, last 0.0300 at step 400\n" \
        "  train/l1          last 0.0500 at step 400\n" \
        "  train/perceptual  last 0.6900 at step 400\n" in text  # the GAN's losses: no best
    assert "  train/syncnet_wt  0.03 since step 200\n" in text
    # 200 steps in 150 s over the two runs; the 900 s between them is no training
    assert "speed: 3 steps/s (0.333 s/step) at step 400; 1.33 steps/s over the run\n" in text
    assert text.endswith(
        "generator eval sync loss: best 0.1500 at step 400; the reference's target ~0.2: reached at step 400\n"
        f"below {report.SYNC_LOSS_THRESHOLD}, where syncnet_wt switches on: first at step 200\n"
        f"picture: {out}\n")
    assert_picture(out)
    assert not (tmp_path / "report.png").exists()
    logs, starts = report.read_logs(report.event_files(tmp_path))
    assert starts == [100, 300] and [p.step for p in logs["eval/sync"]] == [100, 200, 300, 400]
    assert [title for title, _, _ in report.panels(logs)] == [
        "sync loss: the expert on generated frames", "L1 loss", "adversarial loss (generator)", "discriminator losses"]


def test_sync_accuracy_and_learning_rate_are_drawn_when_logged(tmp_path, capsys):
    write_run(tmp_path, {"eval/sync": [(10, 0.5, T0 + 10)], "eval/sync_accuracy": [(10, 0.8, T0 + 10), (20, 0.7, T0 + 20)],
                         "train/l1": [(10, 0.1, T0 + 10), (20, 0.1, T0 + 20)], "train/lr": [(10, 1e-4, T0 + 10)]})
    text = summary_of(tmp_path, capsys)
    assert "  eval/sync_accuracy  best 0.8000 at step 10, last 0.7000 at step 20\n" in text  # the highest is best
    assert "  train/lr            0.0001 since step 10\n" in text
    logs, _ = report.read_logs(report.event_files(tmp_path))
    assert [title for title, _, _ in report.panels(logs)] == [
        "sync loss: the expert on generated frames", "L1 loss", "sync accuracy", "learning rate"]
    assert_picture(tmp_path / "report.png")


def test_a_folder_without_logs_is_one_line(tmp_path, capsys):
    assert cli.run(report.main, [str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: no TensorBoard logs in {tmp_path}\n"
    assert list(tmp_path.iterdir()) == []
    assert cli.run(report.main, [str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err == f"error: CHECKPOINT_DIR {tmp_path / 'missing'} is not a folder\n"
    SummaryWriter(tmp_path / "tensorboard").close()  # a run that has not logged a step yet
    assert cli.run(report.main, [str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: the TensorBoard logs in {tmp_path} hold no curves yet\n"


def test_the_module_runs_as_a_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.report", str(tmp_path)], capture_output=True,
                            text=True, env=ENV, cwd=ROOT)
    assert result.returncode == 1 and one_line_error(result) == f"error: no TensorBoard logs in {tmp_path}"


def test_the_report_of_a_real_expert_run(corpus, tmp_path, capsys):  # noqa: F811 - corpus: the fixture
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "2", "--log_interval", "1")) == 0
    trained = capsys.readouterr().out
    last_eval = trained.split("last evaluation: loss ")[1].split(";")[0].split(",")[0]  # at step 2
    text = summary_of(out, capsys)
    assert text.startswith(f"expert SyncNet in {out}: steps 1..2 logged, 1 run(s), ")
    # the column's width: that of the longest tag logged (eval/sync_accuracy, where the trainer logs it)
    assert re.search(f"\n  eval/loss +best {last_eval} at step 2, last {last_eval} at step 2\n", text)
    assert f"expert eval loss: best {last_eval} at step 2; the reference's target ~0.25: " in text
    assert_picture(out / "report.png")


def test_a_read_only_folder_gets_the_summary_then_one_line_naming_it(tmp_path, capsys, monkeypatch):
    write_run(tmp_path, {"train/loss": [(1, 0.7, T0), (2, 0.6, T0 + 1)], "eval/loss": [(2, 0.65, T0 + 1)]})
    real_open = os.open

    def read_only(path, *args, **kwargs):  # the kernel's answer in a read-only folder
        if str(path).startswith(f"{tmp_path}/."):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert cli.run(report.main, [str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"expert SyncNet in {tmp_path}: steps 1..2 logged") and "picture:" not in captured.out
    assert "  eval/loss   best 0.6500 at step 2, last 0.6500 at step 2\n" in captured.out
    assert captured.err == f"error: {tmp_path} is read-only (read-only file system): the picture was not written; " \
        "name another place with --out PNG\n"
    assert not (tmp_path / "report.png").exists()


def test_a_read_only_folder_as_the_kernel_makes_it(tmp_path):
    folder = tmp_path / "run"
    write_run(folder, {"train/loss": [(1, 0.7, T0), (2, 0.6, T0 + 1)]})
    result = in_namespace(READ_ONLY + ' && cd "$ROOT" && "$PY" -m training.report "$FOLDER"', folder)
    assert one_line_error(result) == f"error: {folder} is read-only (read-only file system): the picture was not " \
        "written; name another place with --out PNG"
    assert result.stdout.startswith(f"expert SyncNet in {folder}: steps 1..2 logged")


def test_every_point_is_marked_and_the_steps_are_whole(tmp_path):
    # A 2-step run: the evaluation is one point (a line alone would not show it), steps 1 and 2.
    write_run(tmp_path, {"train/loss": [(1, 0.7, T0), (2, 0.6, T0 + 1)], "eval/loss": [(2, 0.65, T0 + 1)]})
    logs, starts = report.read_logs(report.event_files(tmp_path))
    figure = report.figure_of(logs, starts, "expert")
    figure.canvas.draw()
    for axis in figure.axes:
        curves = [line for line in axis.get_lines() if line.get_label().startswith(("train/", "eval/", "steps/s"))]
        assert curves and all(line.get_marker() == "o" and line.get_markersize() > 0 for line in curves)
        low, high = axis.get_xlim()
        shown = [tick for tick in axis.get_xticks() if low <= tick <= high]
        assert shown and all(tick == int(tick) for tick in shown), (axis.get_title(), shown)
        labels = [label.get_text() for label, tick in zip(axis.get_xticklabels(), axis.get_xticks()) if low <= tick <= high]
        assert all(label.lstrip("−-").isdigit() for label in labels), labels
    loss = figure.axes[0]
    assert [list(line.get_xdata()) for line in loss.get_lines()][:2] == [[2], [1, 2]]  # eval/loss, train/loss


def test_the_tensorboard_folder_s_picture_goes_to_the_checkpoint_dir(tmp_path, capsys):
    write_run(tmp_path, {"train/loss": [(1, 0.7, T0), (2, 0.6, T0 + 1)]})
    text = summary_of(tmp_path / "tensorboard", capsys)
    assert text.startswith(f"expert SyncNet in {tmp_path}: ") and text.endswith(f"picture: {tmp_path / 'report.png'}\n")
    assert_picture(tmp_path / "report.png")
    assert not (tmp_path / "tensorboard" / "report.png").exists()


def test_out_s_suffix_chooses_the_format_and_any_other_is_refused(tmp_path, capsys):
    write_run(tmp_path, {"train/loss": [(1, 0.7, T0), (2, 0.6, T0 + 1)]})
    summary_of(tmp_path, capsys, "--out", str(tmp_path / "run.svg"))
    assert (tmp_path / "run.svg").read_text().lstrip().startswith("<?xml") and "<svg" in (tmp_path / "run.svg").read_text()
    summary_of(tmp_path, capsys, "--out", str(tmp_path / "run.PDF"))
    assert (tmp_path / "run.PDF").read_bytes().startswith(b"%PDF")
    for name in ("run.txt", "run"):
        assert cli.run(report.main, [str(tmp_path), "--out", str(tmp_path / name)]) == 1
        captured = capsys.readouterr()
        assert captured.err == f"error: --out {tmp_path / name}: the picture is written as PNG, PDF or SVG; " \
            "name a file ending in .png, .pdf, .svg\n" and captured.out == ""
        assert not (tmp_path / name).exists()


def test_the_learning_rates_the_trainers_log_are_drawn_as_such(tmp_path, capsys):
    write_run(tmp_path, {"train/perceptual": [(10, 0.7, T0 + 10)], "train/l1": [(10, 0.1, T0 + 10)],
                         "train/learning_rate": [(10, 1e-4, T0 + 10)], "train/disc_learning_rate": [(10, 2e-4, T0 + 10)]})
    text = summary_of(tmp_path, capsys)
    assert "  train/learning_rate       0.0001 since step 10\n  train/disc_learning_rate  0.0002 since step 10\n" in text
    logs, _ = report.read_logs(report.event_files(tmp_path))
    assert report.panels(logs)[-1] == ("learning rate", ["train/disc_learning_rate", "train/learning_rate"], [])
    assert "discriminator losses" not in [title for title, _, _ in report.panels(logs)]


def test_help_names_the_command_as_it_is_run(capsys):
    with pytest.raises(SystemExit):
        report.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m training.report [-h]")
