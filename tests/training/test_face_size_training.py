"""Training at --hparams face_size=192 with the same trainers: the corpus drawn for it, the samples,
checkpoints that record it, resume, AMP, torchrun, the audit, and a mismatch said in one line."""

import json
import os
import random
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT
from support.confined import ENV, one_line_error, script
from support.synthetic_weights import save_released, seeded

import color_syncnet_train
import hq_wav2lip_train
import sync_audit
from evaluation.sync_audit import EXPERT, load_auditor
from hparams import hparams
from models import SyncNet_color
from models.checkpoint import read_checkpoint, save_checkpoint
from system.reports import read_rows
from training import dataset, synthetic_data
from training.checkpoints import checkpoints
from training.synthetic_data import make_corpus

FAST = "face_size=192,num_workers=0,syncnet_batch_size=4,batch_size=2,syncnet_checkpoint_interval=2," \
       "checkpoint_interval=2,syncnet_eval_interval=2,eval_interval=2"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus192")
    make_corpus(root, "preprocessed", speakers=6, clips=1, seconds=1.2, seed=3, face_size=192)
    save_checkpoint(root / "expert192.pth", seeded(SyncNet_color(192), 1))
    save_released(seeded(SyncNet_color(), 1), root / "expert96.pth")
    return root


@pytest.fixture(autouse=True)
def restore_hparams():
    saved = hparams.values()
    yield
    for name, value in saved.items():
        hparams.set_hparam(name, value)


def flags(corpus, checkpoint_dir, *extra, hparams_=FAST):
    return ["--data_root", str(corpus), "--filelist_dir", str(corpus / "filelists"), "--checkpoint_dir",
            str(checkpoint_dir), "--eval_batches", "1", "--hparams", hparams_, "--device", "cpu", "--quiet",
            *map(str, extra)]


def test_the_corpus_for_192_has_detail_a_96_pixel_crop_loses():
    """The same speakers and mouths drawn for 96 and for 192, each cut to 192 pixels: in the mouth,
    a round trip through 96 pixels takes away far more of the larger drawing (the lines a pixel
    or two wide drawn only there) than of the smaller one's crop, which is 96-pixel detail already."""
    def through_96(face):
        return np.abs(face.astype(float) - cv2.resize(cv2.resize(face, (96, 96), interpolation=cv2.INTER_AREA),
                                                      (192, 192)))

    for seed in range(4):
        speaker = synthetic_data.random_speaker(random.Random(seed))
        for mouth in ((0.36, 0.26), (0.38, 0.12), (0.24, 0.22), synthetic_data.REST_MOUTH):
            large = synthetic_data.face_crop(synthetic_data.render_frame(speaker, mouth, 0.0, scale=2))
            small = synthetic_data.face_crop(synthetic_data.render_frame(speaker, mouth, 0.0, scale=1))
            assert large.shape == (256, 256, 3) and small.shape == (128, 128, 3)
            at_192 = cv2.resize(large, (192, 192), interpolation=cv2.INTER_AREA)
            from_96 = cv2.resize(cv2.resize(small, (96, 96), interpolation=cv2.INTER_AREA), (192, 192))
            no_mouth = synthetic_data.face_crop(synthetic_data.render_frame(speaker, (0.05, 0.0), 0.0, scale=2))
            mouth_pixels = np.abs(at_192.astype(int) - cv2.resize(no_mouth, (192, 192), interpolation=cv2.INTER_AREA)
                                  ).sum(-1) > 30
            lost, lost_anyway = through_96(at_192)[mouth_pixels].mean(), through_96(from_96)[mouth_pixels].mean()
            assert lost > 6 and lost > 1.8 * lost_anyway, (seed, mouth, lost, lost_anyway)  # grey levels
    # The default corpus is the one the 96-pixel networks have always trained on.
    assert synthetic_data.render_frame(speaker, (0.36, 0.26), 0.0).shape == (160, 160, 3)


def test_samples_are_drawn_at_the_face_size(corpus):
    clips = dataset.read_filelist(corpus / "filelists", "train", corpus)
    faces, mel, label, skipped = dataset.ExpertSamples(clips, seed=1, face_size=192)[0]
    assert faces.shape == (15, 96, 192) and mel.shape == (1, 80, 16)
    faces, frame_mels, mel, target, skipped = dataset.GeneratorSamples(clips, seed=1, face_size=192)[0]
    assert faces.shape == (6, 5, 192, 192) and target.shape == (3, 5, 192, 192) and frame_mels.shape == (5, 1, 80, 16)
    assert (faces[:3, :, 96:] == 0).all() and faces[:3, :, :96].abs().sum() > 0  # the target's lower half masked
    # The 256-pixel crops are resized to 192 as cv2 resizes them; 128-pixel ones would be upscaled.
    clip = clips[0]
    crop = cv2.imread(str(clip / "0.jpg"))
    assert crop.shape == (256, 256, 3)
    window = dataset.ExpertSamples(clips, seed=1, face_size=192).read_window(clip, [0])
    assert np.array_equal(window[0], cv2.resize(crop, (192, 192)).astype(np.float32) / 255)
    assert dataset.small_crops_note(clips, 192) is None
    note = dataset.small_crops_note(clips, 384)
    assert note.startswith(f"note: {len(clips)} of {len(clips)} clips looked at have face crops smaller than the "
                           "face size 384 (e.g. 256x256 in ")


def test_the_expert_trains_records_its_size_and_resumes_at_it(corpus, tmp_path, capsys):
    out = tmp_path / "expert"
    assert color_syncnet_train.main(flags(corpus, out, "--max_steps", "2")) == 0
    assert "face_size=192*" in capsys.readouterr().out  # among the changed hyper-parameters
    state = read_checkpoint(out / "checkpoint_step000000002.pth")
    assert state["face_size"] == 192 and state["hparams"]["face_size"] == 192
    assert json.loads((out / "run.json").read_text())["hparams"]["face_size"] == 192
    # run.json repeats the run, its size included.
    assert color_syncnet_train.main(["--config", str(out / "run.json"), "--resume", "--max_steps", "3"]) == 0
    assert read_checkpoint(out / "checkpoint_step000000003.pth")["global_step"] == 3
    # Resumed without the size: one line saying how.
    result = subprocess.run(script("color_syncnet_train.py", *flags(corpus, out, "--resume", "--max_steps", "4",
                                                                    hparams_="num_workers=0,syncnet_batch_size=4")),
                            capture_output=True, text=True, env=ENV, check=False)
    assert "for 192-pixel faces (face_size 192), but one for 96-pixel faces is needed here (this run's --hparams " \
           "face_size=96; --hparams face_size=192 trains at the file's)" in one_line_error(result)
    assert [path.name for path in checkpoints(out)][-1] == "checkpoint_step000000003.pth"


def test_a_generator_and_an_expert_of_different_sizes_is_one_line_before_any_step(corpus, tmp_path):
    out = tmp_path / "mismatch"
    result = subprocess.run(script("wav2lip_train.py", *flags(corpus, out, "--syncnet_checkpoint_path",
                                                              corpus / "expert96.pth", "--max_steps", "1")),
                            capture_output=True, text=True, env=ENV, check=False)
    assert "expert96.pth holds the expert lip-sync SyncNet (lipsync_expert.pth) for 96-pixel faces (face_size 96), " \
           "but one for 192-pixel faces is needed here" in one_line_error(result)
    assert not checkpoints(out)


def test_the_gan_trains_at_192_in_bf16_and_both_networks_record_it(corpus, tmp_path, capsys):
    out = tmp_path / "gan"
    assert hq_wav2lip_train.main(flags(corpus, out, "--syncnet_checkpoint_path", corpus / "expert192.pth",
                                       "--max_steps", "2", "--amp", "bf16")) == 0
    summary = capsys.readouterr().out
    assert "sync_accuracy" in summary and "mixed precision bfloat16" in summary
    for name in ("checkpoint_step000000002.pth", "disc_checkpoint_step000000002.pth"):
        assert read_checkpoint(out / name)["face_size"] == 192
    samples = sorted(out.glob("samples_step*/*.jpg"))
    assert samples and cv2.imread(str(samples[0])).shape == (192, 4 * 192, 3)  # reference | masked | generated | target


def test_two_process_torchrun_trains_at_192(corpus, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               str(ROOT / "color_syncnet_train.py"), *flags(corpus, out, "--max_steps", "2")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch 4 x 2 process(es)" in result.stdout
    assert read_checkpoint(out / "checkpoint_step000000002.pth")["face_size"] == 192


def test_the_sync_audit_reads_crops_at_its_expert_s_size(corpus, tmp_path, capsys):
    auditor = load_auditor(corpus / "expert192.pth", EXPERT, "cpu", batch_size=16)
    assert auditor.model.face_size == 192
    clip = corpus / "speaker000" / "00000"
    later = tmp_path / "later"
    later.mkdir()
    shutil.copy(clip / "audio.wav", later / "audio.wav")
    for crop in clip.glob("*.jpg"):  # the lips of frame f are now frame f + 2's: the offset moves by +2
        shutil.copy(crop, later / f"{int(crop.stem) + 2}.jpg")
    (before, _), (after, _) = auditor.score(clip), auditor.score(later)
    assert after.offset == before.offset + 2
    report = tmp_path / "audit.csv"
    assert sync_audit.main(["--data_root", str(corpus), "--syncnet_checkpoint_path", str(corpus / "expert192.pth"),
                            "--report", str(report), "--device", "cpu"]) == 0
    rows = read_rows(report)
    assert len(rows) == 6 and all(row["error"] == "" and int(row["windows"]) > 0 for row in rows)
