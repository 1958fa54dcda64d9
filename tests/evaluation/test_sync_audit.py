"""The sync audit: each clip's offset and confidence (expert and LSE SyncNet), the run around it
(report, resume, shards, errors, summary, histogram) and --correct."""

import shutil

import numpy as np
import pytest
import torch
from support.synthetic_weights import save_released, seeded

import audio
import merge_shards
import sync_audit
from evaluation import sync_audit as library
from evaluation.metrics.lse import AUDIO_RATE, SAMPLES_PER_FRAME, LSEScorer, SyncScore
from evaluation.metrics.syncnet import S
from evaluation.sync_audit import (
    EXPERT,
    ExpertAuditor,
    LSEAuditor,
    load_auditor,
    longest_run,
    read_crops,
)
from models import SyncNet_color
from system.cli import run
from system.reports import read_rows
from training.sync_corrections import read_corrections
from training.synthetic_data import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit")
    make_corpus(d / "pre", "preprocessed", speakers=2, clips=2, seconds=1.2, seed=0)
    save_released(seeded(SyncNet_color(), 0), d / "lipsync_expert.pth")
    save_released(seeded(S(), 3), d / "syncnet_v2.model", module_prefix=False, wrapped=False)
    return d


@pytest.fixture(scope="module")
def expert(corpus):
    return load_auditor(corpus / "lipsync_expert.pth", EXPERT, "cpu", batch_size=16)


def copy_clip(source, target, renumber=0):
    """A copy of a clip folder whose face crops are numbered ``renumber`` frames later."""
    target.mkdir(parents=True)
    shutil.copy(source / "audio.wav", target / "audio.wav")
    for crop in source.glob("*.jpg"):
        shutil.copy(crop, target / f"{int(crop.stem) + renumber}.jpg")
    return target


def test_crops_that_come_k_frames_later_move_the_offset_by_plus_k(corpus, expert, tmp_path):
    # The lips of frame f are now those of frame f + 3, the audio unchanged: the audio comes 3
    # frames early, +3 in LSE's sign. With any weights every distance moves by exactly 3 offsets.
    clip = corpus / "pre" / "speaker000" / "00000"
    later = copy_clip(clip, tmp_path / "v" / "later", renumber=3)
    (before, _), (after, frames) = expert.score(clip), expert.score(later)
    assert frames == 30 and after.windows == before.windows == 26
    np.testing.assert_allclose(after.distances[:-3], before.distances[3:], rtol=1e-5)
    assert after.offset == before.offset + 3


@pytest.mark.parametrize("frames_late", [5, 10, -5])
def test_audio_that_comes_d_frames_late_gives_minus_d(corpus, expert, tmp_path, monkeypatch, frames_late):
    # A known truth without a trained network: the lip features are the audio features of the
    # unshifted clip at each window's own frame. The shifted audio.wav (whole mel steps: 5 frames
    # are 16 hops) then matches them at -d.
    clip = corpus / "pre" / "speaker001" / "00001"
    wav = audio.load_wav(clip / "audio.wav", 16000)
    mel = audio.melspectrogram(wav).T.astype(np.float32)
    monkeypatch.setattr(ExpertAuditor, "_lip_features",
                        lambda self, crops, starts: self._audio_features(mel, starts)[0])
    shift = frames_late * SAMPLES_PER_FRAME
    moved = np.concatenate([np.zeros(shift, np.float32), wav[:-shift]]) if shift > 0 else \
        np.concatenate([wav[-shift:], np.zeros(-shift, np.float32)])
    shifted = copy_clip(clip, tmp_path / "v" / "shifted")
    audio.save_wav(moved, shifted / "audio.wav", 16000)
    in_sync, _ = expert.score(clip)
    score, _ = expert.score(shifted)
    assert in_sync.offset == 0 and in_sync.min_distance < 1e-5
    assert score.offset == -frames_late
    assert score.min_distance < 1e-3 and score.confidence > 0


def test_the_lse_syncnet_scores_the_longest_run_of_crops_as_it_scores_a_video(corpus, tmp_path):
    clip = copy_clip(corpus / "pre" / "speaker000" / "00001", tmp_path / "v" / "gap")
    (clip / "3.jpg").unlink()  # frames 4..29 are the longest run: the audio from frame 4 on
    auditor = load_auditor(corpus / "syncnet_v2.model", library.LSE, "cpu", batch_size=20, max_offset=4)
    assert isinstance(auditor, LSEAuditor)
    score, frames = auditor.score(clip)
    wav = audio.load_wav(clip / "audio.wav", AUDIO_RATE)[4 * SAMPLES_PER_FRAME:]
    expected = LSEScorer(corpus / "syncnet_v2.model", "cpu", 20, 4).score(read_crops(clip, range(4, 30)), wav)
    assert frames == 29 and score.windows == expected.windows == 26 - 5
    assert (score.offset, score.distances) == (expected.offset, pytest.approx(expected.distances, rel=1e-5))


def test_longest_run():
    assert longest_run([]) == []
    assert longest_run([0, 1, 2, 5, 6, 7, 8, 10]) == [5, 6, 7, 8]
    assert longest_run([3, 4, 8, 9]) == [3, 4]


# --- the script, with a stand-in scorer: the run's mechanics ------------------------------------

class FakeAuditor:
    """Offsets chosen per clip; reads the clip's audio, as both scorers do."""

    kind = EXPERT

    def __init__(self, offsets, fail_on=None):
        self.offsets, self.fail_on, self.scored = offsets, fail_on, []

    def score(self, folder):
        library.clip_audio(folder, 16000)
        clip = f"{folder.parent.name}/{folder.name}"
        self.scored.append(clip)
        if clip == self.fail_on:
            raise KeyboardInterrupt
        offset = self.offsets.get(clip, 0)
        distances = [1.0] * 7
        distances[3 - offset] = 0.5
        return SyncScore(offset, 0.5 if offset else 0.3, 0.5, distances, 20), 30


@pytest.fixture
def data(corpus, tmp_path):
    shutil.copytree(corpus / "pre", tmp_path / "pre")
    return tmp_path / "pre"


@pytest.fixture
def fake(monkeypatch):
    auditor = FakeAuditor({"speaker000/00001": -2, "speaker001/00000": 3})
    monkeypatch.setattr(sync_audit, "load_auditor", lambda *args: auditor)
    return auditor


def audit(corpus, data, *flags):
    return run(sync_audit.main, ["--data_root", str(data), "--syncnet_checkpoint_path", str(corpus / "lipsync_expert.pth"),
                                 "--max_offset", "3", "--quiet", *map(str, flags)])


CLIPS = ["speaker000/00000", "speaker000/00001", "speaker001/00000", "speaker001/00001"]


def test_the_report_summary_histogram_and_corrections(corpus, data, fake, capsys):
    assert audit(corpus, data, "--min_confidence", "0.4", "--correct") == 0
    out = capsys.readouterr().out
    rows = read_rows(data / "sync_audit.csv")
    assert [(row["clip"], row["offset"], row["confidence"], row["error"]) for row in rows] == [
        ("speaker000/00000", "0", "0.3", ""), ("speaker000/00001", "-2", "0.5", ""),
        ("speaker001/00000", "3", "0.5", ""), ("speaker001/00001", "0", "0.3", "")]
    assert "in sync (offset 0): 2 clips (50.0 %); within +-1 frame: 2; shifted by 2 frames or more: 2" in out
    assert "\n      -2  1\n      +0  2\n      +3  1\n" in out
    assert "below --min_confidence 0.4: 2 clips" in out
    assert (data / "sync_audit.png").read_bytes()[:4] == b"\x89PNG"
    assert read_corrections(data) == {"speaker000/00000": (0, 0.3), "speaker000/00001": (-2, 0.5),
                                      "speaker001/00000": (3, 0.5), "speaker001/00001": (0, 0.3)}


def test_a_clip_without_audio_is_a_row_naming_it_and_the_exit_status_is_1(corpus, data, fake, capsys):
    (data / "speaker001" / "00000" / "audio.wav").unlink()
    assert audit(corpus, data, "--report", data / "r.json") == 1
    err = capsys.readouterr().err
    assert err.strip() == "speaker001/00000: skipped: no audio.wav"
    rows = {row["clip"]: row for row in read_rows(data / "r.json")}
    assert rows["speaker001/00000"]["error"] == "no audio.wav" and rows["speaker001/00001"]["offset"] == 0


def test_a_killed_run_resumes_with_the_clips_already_scored(corpus, data, fake, monkeypatch):
    fake.fail_on = "speaker001/00000"
    with pytest.raises(KeyboardInterrupt):
        sync_audit.main(["--data_root", str(data), "--syncnet_checkpoint_path", str(corpus / "lipsync_expert.pth"),
                         "--max_offset", "3", "--quiet"])
    assert [row["clip"] for row in read_rows(data / "sync_audit.csv")] == CLIPS[:2]
    fake.fail_on, fake.scored = None, []
    assert audit(corpus, data) == 0
    assert fake.scored == CLIPS[2:]
    assert [row["clip"] for row in read_rows(data / "sync_audit.csv")] == CLIPS
    # another --max_offset is another audit: refused, not mixed in
    assert audit(corpus, data, "--max_offset", "2") == 1


def test_shards_join_and_correct_refuses_until_they_are_joined(corpus, data, fake, capsys):
    assert audit(corpus, data, "--shard", "0/2") == 0
    assert audit(corpus, data, "--correct") == 1
    assert capsys.readouterr().err.strip().endswith(
        f"{data / 'sync_audit.csv'}: shard(s) 1 of 2 missing: run them (or wait for them) first")
    assert audit(corpus, data, "--shard", "1/2", "--correct") == 1
    assert "--correct needs the whole run's report" in capsys.readouterr().err
    assert audit(corpus, data, "--shard", "1/2") == 0
    assert audit(corpus, data, "--correct") == 1
    assert capsys.readouterr().err.strip() == (f"error: {data / 'sync_audit.csv'} is still in shard files: join them "
                                               f"first with python merge_shards.py {data / 'sync_audit.csv'}")
    assert run(merge_shards.main, [str(data / "sync_audit.csv")]) == 0
    fake.scored = []
    assert audit(corpus, data, "--correct") == 0
    assert fake.scored == [] and sorted(read_corrections(data)) == CLIPS


def test_a_filelist_names_the_clips(corpus, data, fake):
    (data / "some.txt").write_text("speaker001/00001\nspeaker000/00000 NF\n")
    assert audit(corpus, data, "--filelist", data / "some.txt") == 0
    assert [row["clip"] for row in read_rows(data / "sync_audit.csv")] == ["speaker000/00000", "speaker001/00001"]


@pytest.mark.parametrize("state, held", [
    ({"binary_pred.0.weight": torch.zeros(1)}, "is a checkpoint of the visual-quality discriminator "
                                               "(visual_quality_disc.pth)"),
    ({"fc.weight": torch.zeros(1)}, "holds no network the sync audit knows"),
])
def test_a_checkpoint_of_another_network_is_one_line(data, tmp_path, capsys, state, held):
    torch.save(state, tmp_path / "other.pth")
    argv = ["--data_root", data, "--syncnet_checkpoint_path", tmp_path / "other.pth", "--quiet"]
    assert run(sync_audit.main, list(map(str, argv))) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'other.pth'} {held}: the audit needs the expert lip-sync SyncNet (lipsync_expert.pth, or a "
        "checkpoint of color_syncnet_train.py) or LSE's SyncNet (syncnet_v2.model)")
    assert not (data / "sync_audit.csv").exists()


def test_missing_data_root_and_bad_values_are_one_line(corpus, tmp_path, capsys):
    assert audit(corpus, tmp_path / "absent") == 1
    assert capsys.readouterr().err.strip() == f"error: --data_root {tmp_path / 'absent'} is not a folder"
    assert audit(corpus, tmp_path, "--max_offset", "-1") == 1
    assert capsys.readouterr().err.strip() == "error: --max_offset must be a whole number from 0 to 1000, not -1"
    assert audit(corpus, tmp_path, "--min_confidence", "nan") == 1
    assert capsys.readouterr().err.strip() == "error: --min_confidence must be a finite number, 0 or more, not nan"


def test_the_whole_script_with_the_expert(corpus, data, capsys):
    # Random weights: the numbers mean nothing, the run must hold together (LSE's is tested above).
    (data / "speaker000" / "00001" / "7.jpg").write_bytes(b"not a jpeg")
    assert audit(corpus, data) == 1
    captured = capsys.readouterr()
    rows = read_rows(data / "sync_audit.csv")
    assert [row["clip"] for row in rows] == CLIPS
    assert rows[1]["error"].startswith("cannot read") and "7.jpg" in rows[1]["error"]
    assert all(-3 <= int(row["offset"]) <= 3 and float(row["confidence"]) >= 0 for row in rows if not row["error"])
    assert "3 of 4 clips scored" in captured.out and "failed: 1 clips" in captured.out
