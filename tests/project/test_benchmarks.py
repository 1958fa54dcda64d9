"""The benchmarks as commands: nothing to run is one line and exit status 1, a run that failed
makes the exit status 1, and a bad size is refused by the parser. No benchmark is run here,
but the face-size check's scoring, on seeded networks, with its training stood in for."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT

from system.cli import run


def benchmark(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("made", [True, False], ids=["empty folder", "no folder"])
def test_a_benchmark_without_clips_says_so_in_one_line(tmp_path, made):
    clips = tmp_path / "clips"
    if made:
        clips.mkdir()
        (clips / "notes.txt").write_text("no videos here")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_colour.py"), "--clips_dir", str(clips)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 1
    where = "holds no .mp4 clips" if made else "does not exist"
    assert done.stderr == f"error: no clips to benchmark: {clips} {where} (give --clips_dir DIR or --videos)\n"
    assert done.stdout == ""  # not even the table's header


def test_named_videos_that_are_not_there_are_one_line(tmp_path, capsys):
    bench_colour = benchmark("bench_colour")
    assert run(bench_colour.main, ["--videos", str(tmp_path / "gone.mp4"), "--audio", str(tmp_path / "a.wav")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'gone.mp4'}: no such file\n"


def test_a_failed_case_makes_the_exit_status_1(monkeypatch, capsys):
    bench_memory = benchmark("bench_memory")
    monkeypatch.setattr(bench_memory, "make_inputs", lambda work, cases: {})
    monkeypatch.setattr(bench_memory, "spec_of", lambda case, made, work: {"case": case})
    monkeypatch.setattr(bench_memory, "measure",
                        lambda spec: (0.5, None, ["MemoryError"]) if spec["case"] == "mel-7h" else (0.5, 120.0, None))
    assert run(bench_memory.main, ["--cases", "mel-1min", "mel-7h"]) == 1
    out, err = capsys.readouterr()
    assert "| mel-1min | 0.5 | 120 MB |" in out and "| mel-7h | 0.5 | failed: ['MemoryError'] |" in out
    assert err == "1 of 2 runs failed (their rows say why)\n"
    assert run(bench_memory.main, ["--cases", "mel-1min"]) == 0


@pytest.mark.parametrize("name, argv", [("bench_models", ["--det_size", "1280"]),
                                        ("bench_inference", ["--sizes", "1280x0"])])
def test_a_bad_frame_size_is_refused_by_the_parser(name, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        benchmark(name).build_parser().parse_args(argv)
    assert stopped.value.code == 2
    assert "expected" in capsys.readouterr().err.splitlines()[-1]


def test_sizes_read_and_show_as_width_x_height():
    parser = benchmark("bench_inference").build_parser()
    assert parser.parse_args(["--sizes", "640X360"]).sizes == [(640, 360)]
    assert "(default: 1280x720 1920x1080)" in " ".join(parser.format_help().split())  # as typed


def test_who_speaks_check_counts_switches_and_releases_per_turn(tmp_path, capsys):
    check = benchmark("who_speaks_check")
    #          turn of person 0 (frames 0-5), pause, turn of person 1 (frames 8-13)
    turn = [0] * 6 + [None] * 2 + [1] * 6
    speaking = [None, 0, 0, None, 0, None, None, None, 1, 1, 1, 1, None, None]
    chosen = [None, None, 0, 0, 0, 0, 0, None, None, None, 1, 1, 1, None]
    assert check.turn_figures(chosen, speaking, turn) == ([1, 2], [2, 1])  # switch 1 and 2 frames late; 2 and 1 after
    assert run(check.main, ["--syncnet_checkpoint_path", str(tmp_path / "none.pth"), "--workdir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: no expert at {tmp_path / 'none.pth'} (--syncnet_checkpoint_path)\n"


def test_the_face_size_check_s_measures_against_independent_figures():
    import numpy as np

    check = benchmark("face_size_check")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 96, 3)).astype(np.float64)
    assert check.ssim(image, image) == pytest.approx(1.0)
    assert check.psnr(image, image + 5) == pytest.approx(10 * np.log10(255 ** 2 / 25))  # MSE 25
    noisy = [image + rng.normal(0, sigma, image.shape) for sigma in (2, 10, 40)]
    scores = [check.ssim(image, other) for other in noisy]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.99 > 0.9 > scores[-1]
    assert check.ssim(image, noisy[1]) == pytest.approx(check.ssim(noisy[1], image))
    # A uniform brightness change costs SSIM its luminance term alone: 2ab/(a^2+b^2) at every pixel.
    flat = np.full((32, 32, 1), 100.0)
    c1 = (0.01 * 255) ** 2
    assert check.ssim(flat, flat + 50) == pytest.approx((2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1))


def test_the_face_size_check_needs_a_finished_large_run(tmp_path, capsys):
    check = benchmark("face_size_check")
    assert run(check.main, ["--large", str(tmp_path / "nothing"), "--workdir", str(tmp_path / "w"),
                            "--time_ratio", "1.3"]) == 1
    assert "no finished learning check there" in capsys.readouterr().err


def test_the_face_size_check_trains_the_96_networks_as_the_large_run_did_and_scores_all_three(tmp_path, monkeypatch):
    import json

    import cv2
    from support.synthetic_weights import seeded

    from models import SyncNet_color, Wav2Lip
    from models.checkpoint import save_checkpoint
    from training.checkpoints import checkpoint_file
    from training.synthetic_data import make_corpus

    check = benchmark("face_size_check")
    large, work = tmp_path / "lc192", tmp_path / "fsc"
    make_corpus(large / "corpus192", speakers=10, clips=1, seconds=1.2, seed=0, face_size=192)
    save_checkpoint(checkpoint_file(large / "expert", "", 250), seeded(SyncNet_color(192), 1), global_step=250)
    save_checkpoint(checkpoint_file(large / "wav2lip", "", 4), seeded(Wav2Lip(192), 2, gain=0.8), global_step=4)
    (large / "learning_check.json").write_text(json.dumps({
        "face_size": 192, "amp": "off", "expert": {"hparams": "syncnet_batch_size=16,face_size=192"},
        "generator": {"hparams": "batch_size=4,syncnet_wt=0.03,face_size=192"}}))
    trained = []

    def trainer(script, args, steps, interval, tag, target, folder, name):  # stands in for the training
        trained.append((script, steps, args[args.index("--hparams") + 1], args[args.index("--amp") + 1]))
        network = SyncNet_color(96) if script == "color_syncnet_train.py" else Wav2Lip(96)
        save_checkpoint(checkpoint_file(folder, "", steps), seeded(network, steps), global_step=steps)
        return steps, 1.0

    monkeypatch.setattr(check, "run_trainer", trainer)
    assert run(check.main, ["--large", str(large), "--workdir", str(work), "--time_ratio", "1.5", "--windows", "3",
                            "--expert_steps", "300"]) == 0
    assert trained == [("color_syncnet_train.py", 300, "syncnet_batch_size=16,face_size=96", "off"),
                       ("wav2lip_train.py", 4, "batch_size=4,syncnet_wt=0.03,face_size=96", "off"),
                       ("wav2lip_train.py", 6, "batch_size=4,syncnet_wt=0.03,face_size=96", "off")]
    result = json.loads((work / "face_size_check.json").read_text())
    assert (result["steps"], result["same_time_steps"], result["windows"]) == (4, 6, 3)
    assert list(result["generators"]) == ["192 px, step 4", "96 px upscaled, step 4", "96 px upscaled, step 6",
                                          "the truth through 96 px"]
    scores = list(result["generators"].values())
    assert all(0 < score["psnr_lower_half"] and -1 < score["ssim_lower_half"] < 1 for score in scores)
    assert scores[1] != scores[2]  # two generators, two sets of figures
    # Seeded networks draw noise; the truth cut to 96 and upscaled is close to the truth (but not it).
    assert max(score["psnr_lower_half"] for score in scores[:3]) + 10 < scores[3]["psnr_lower_half"] < 60
    assert scores[3]["ssim_lower_half"] > 0.8 > max(score["ssim_lower_half"] for score in scores[:3])
    for losses in [*scores, result["truth"]]:
        assert set(losses) == {"sync_loss_192_expert", "sync_loss_96_expert"} | ({"psnr_lower_half", "ssim_lower_half"}
                                                                                  & set(losses))
        assert all(value > 0 for value in losses.values())
    picture = cv2.imread(str(work / "face_size_check.png"))
    assert picture.shape == (3 * 96, 3 * 192, 3)  # a row a window: the truth, 192, 96 upscaled (lower halves)
