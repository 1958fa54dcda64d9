"""FID: pytorch-fid's InceptionV3 layout, the Fréchet distance, streaming statistics, the script."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT
from scipy import linalg
from support.synthetic_weights import save_released, seeded

import merge_shards
from evaluation import fid
from evaluation.metrics.fid_statistics import (
    RunningStats,
    frame_statistics,
    frechet_distance,
    load_inception,
)
from evaluation.metrics.inception import FIDInceptionV3
from media.containers import read_frames
from media.synthetic import face_frames, write_video
from models import Wav2Lip_disc_qual
from models.checkpoint import CheckpointError
from system.cli import run
from system.errors import UserError

SCRIPT = ROOT / "evaluation" / "fid.py"


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, written out: scipy's sqrtm of the product."""
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("rows, dims", [(200, 8), (60, 16)])
def test_frechet_distance_equals_the_direct_computation(rows, dims):
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, dims)) @ rng.standard_normal((dims, dims))
    b = rng.standard_normal((rows, dims)) * 1.5 + 0.3
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(*args) == pytest.approx(pytorch_fid_distance(*args), rel=1e-6)
    assert frechet_distance(args[0], args[1], args[0], args[1]) == pytest.approx(0, abs=1e-6 * np.trace(args[1]))


def test_frechet_distance_stays_real_for_singular_covariances():
    # Fewer frames than dimensions: the covariances are singular, as for short test sets.
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 32)), rng.standard_normal((6, 32)) + 0.1
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    value = frechet_distance(*args)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(pytorch_fid_distance(*args), rel=1e-4)


def test_running_statistics_equal_numpy_over_uneven_batches():
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((103, 7)) * 50 + 1000  # a large mean tests the numerical stability
    stats = RunningStats(7)
    for start, stop in [(0, 1), (1, 40), (40, 41), (41, 103)]:
        stats.add(rows[start:stop])
    np.testing.assert_allclose(stats.mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance(), np.cov(rows, rowvar=False), rtol=1e-9)
    with pytest.raises(UserError, match="at least 2 frames"):
        RunningStats(7).covariance()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    # Like pytorch-fid's file: a bare state dict, saved before BatchNorm counted its steps.
    state = {k: v for k, v in seeded(FIDInceptionV3(), 5).state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def test_inception_loads_pytorch_fid_layout_and_rejects_others(inception_file, tmp_path):
    model = load_inception(inception_file)
    assert sum(p.numel() for p in model.parameters()) == 23_850_960  # torchvision's InceptionV3, no aux head, 1008 classes
    assert torch.equal(model.state_dict()["Mixed_7c.branch_pool.bn.running_var"],
                       torch.load(inception_file)["Mixed_7c.branch_pool.bn.running_var"])
    with pytest.raises(UserError, match="InceptionV3 weights not found.*pt_inception-2015-12-05"):
        load_inception(tmp_path / "missing.pth")
    other = save_released(seeded(Wav2Lip_disc_qual()), tmp_path / "disc.pth")
    with pytest.raises(CheckpointError, match="visual-quality discriminator"):
        load_inception(other)


def _write_inputs(folder, seed):
    folder.mkdir()
    write_video(folder / "a.mp4", face_frames(3, (96, 96), seed=seed))
    cv2.imwrite(str(folder / "b.png"), face_frames(1, (80, 112), seed=seed + 1)[0])
    return folder


def test_statistics_are_those_of_every_frame(inception_file, tmp_path):
    folder = _write_inputs(tmp_path / "generated", 0)
    model = load_inception(inception_file)
    mu, sigma, count = frame_statistics(folder, model, "cpu", batch_size=2, progress=False)

    # Decoding itself is checked in test_colour; here the frames are the reader's, bit for bit.
    frames = [frame[..., ::-1].copy() for frame in read_frames(folder / "a.mp4")]
    images = [torch.from_numpy(f).permute(2, 0, 1).float()[None] / 255 for f in frames]
    images.append(torch.from_numpy(cv2.imread(str(folder / "b.png"))[:, :, ::-1].copy()).permute(2, 0, 1).float()[None] / 255)
    with torch.no_grad():
        features = torch.cat([model(image) for image in images]).double().numpy()
    assert count == 4 and np.isfinite(features).all() and features.std() > 0
    np.testing.assert_allclose(mu, features.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-3, atol=1e-4 * np.abs(sigma).max())


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_script_prints_fid_and_saves_statistics(inception_file, tmp_path):
    real, generated = _write_inputs(tmp_path / "real", 3), _write_inputs(tmp_path / "generated", 0)
    (generated / ".c.mp4.ab12cd34.mp4").write_bytes(b"unfinished")  # a video still being written: not read
    (generated / ".thumbnails").mkdir()
    (generated / ".thumbnails" / "x.png").write_bytes(b"not really")
    done = _run(real, generated, "--inception_checkpoint_path", inception_file, "--quiet")
    assert done.returncode == 0, done.stderr
    model = load_inception(inception_file)
    a = frame_statistics(real, model, "cpu", progress=False)
    b = frame_statistics(generated, model, "cpu", progress=False)
    assert done.stdout.splitlines()[0] == f"Frames: 4 ({real}) real, 4 ({generated}) generated"
    assert done.stdout.splitlines()[-1].startswith("FID: ")  # last, as pytorch-fid prints it
    assert float(done.stdout.split()[-1]) == pytest.approx(frechet_distance(a[0], a[1], b[0], b[1]), rel=1e-4)
    assert done.stderr == ""  # --quiet: no bars, no loading line

    saved = tmp_path / "real stats.npz"
    assert _run(real, saved, "--inception_checkpoint_path", inception_file, "--quiet", "--save_stats").returncode == 0
    again = _run(saved, generated, "--weights", inception_file, "--quiet")  # the older spelling still works
    assert float(again.stdout.split()[-1]) == pytest.approx(float(done.stdout.split()[-1]), rel=1e-6)
    assert again.stdout.splitlines()[0] == f"Frames: the saved statistics of {saved} real, 4 ({generated}) generated"

    missing = _run(real, generated, "--inception_checkpoint_path", tmp_path / "nope.pth")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 2 and "InceptionV3 weights not found" in missing.stderr
    assert missing.stderr.splitlines()[-1].endswith("pass their path with --inception_checkpoint_path")


def test_the_embedding_shows_bars_with_totals(inception_file, tmp_path, capsys):
    """A folder: a bar over its files (with the frames so far); a single video: over its frames."""
    real, generated = _write_inputs(tmp_path / "real", 3), tmp_path / "one.mp4"
    write_video(generated, face_frames(5, (96, 96), seed=9))
    assert fid.main([str(real), str(generated), "--inception_checkpoint_path", str(inception_file)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"loading InceptionV3 from {inception_file} on cpu\n")
    bars = [line.split("\r")[-1] for line in err.split("\n")[1:-1]]  # each bar as it was left
    assert bars[0].startswith("FID real: 100%") and "| 2/2 [" in bars[0] and "file" in bars[0] and "frames=4" in bars[0]
    assert bars[1].startswith("FID one.mp4: 100%") and "| 5/5 [" in bars[1] and "frame" in bars[1]


def test_two_shards_and_a_merge_give_one_runs_fid(inception_file, tmp_path, capsys):
    real, generated = tmp_path / "real", tmp_path / "generated"
    real.mkdir()
    generated.mkdir()
    for i in range(3):  # several files a side, so that each shard has its own
        write_video(real / f"{i}.mp4", face_frames(2, (96, 96), seed=i))
        write_video(generated / f"{i}.mp4", face_frames(2, (96, 96), seed=10 + i))
    # Batches of one frame: a shard groups frames into batches differently, and InceptionV3's
    # float32 features move with the grouping, as with another --batch_size.
    common = [str(real), str(generated), "--inception_checkpoint_path", str(inception_file), "--quiet", "--batch_size", "1"]
    stats = tmp_path / "stats.npz"
    for k in range(2):
        assert fid.main([*common, "--shard", f"{k}/2", "--shard_stats", str(stats)]) == 0
    assert "shard 1 of 2" in capsys.readouterr().out
    parts = sorted(tmp_path.glob("stats.shard-*"))
    model = load_inception(inception_file)
    one_run = []  # what fid.py computes in one process
    for side, path in (("real_", real), ("generated_", generated)):
        merged = RunningStats()
        for part in parts:
            with np.load(part) as saved:
                merged.merge(RunningStats.from_arrays(saved, side))
        mu, sigma, count = frame_statistics(path, model, "cpu", batch_size=1, progress=False)
        one_run.append((mu, sigma))
        assert merged.count == count == 6  # every frame once
        np.testing.assert_allclose(merged.mean, mu, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(merged.covariance(), sigma, rtol=1e-9, atol=1e-12 * np.abs(sigma).max())
    assert merge_shards.main([str(stats)]) == 0
    merged = float(capsys.readouterr().out.split()[-1])
    whole = frechet_distance(*one_run[0], *one_run[1])
    # With 6 frames in 2048 dimensions the covariances are singular, and the square roots of
    # their ~1e-16 eigenvalues turn float64 rounding into ~1e-7 of the FID.
    assert merged == pytest.approx(whole, rel=1e-5) and whole > 0
    assert not list(tmp_path.glob("stats*"))  # the shard files are merged away
    with pytest.raises(UserError, match="not --save_stats or a .npz"):
        fid.main([*common[:1], str(stats), *common[2:], "--shard", "0/2"])


def test_missing_or_empty_inputs_are_one_line_before_inception_loads(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("InceptionV3 loaded before the inputs were checked")

    monkeypatch.setattr(fid, "load_inception", never)
    real, empty = _write_inputs(tmp_path / "real", 3), tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    for paths, error in ([[tmp_path / "missing", empty], f"{tmp_path / 'missing'} not found"],
                         [[real, empty], f"no videos or images in {empty}"],
                         [[tmp_path / "stats.npz", real], f"{tmp_path / 'stats.npz'} not found"],
                         [[empty, tmp_path / "out.npz", "--save_stats"], f"no videos or images in {empty}"]):
        assert run(fid.main, [*map(str, paths), "--inception_checkpoint_path", str(tmp_path / "absent.pth")]) == 1
        assert capsys.readouterr().err == f"error: {error}\n"  # no "loading InceptionV3" line before it
    assert not (tmp_path / "out.npz").exists()
