"""--shard K/N and torchrun's RANK/WORLD_SIZE: shards together write what one run writes."""

import subprocess

import pytest
from conftest import ROOT
from support.confined import ENV, script, tree
from support.synthetic_weights import save_released, seeded

import merge_shards
from evaluation.metrics.syncnet import S
from media.synthetic import face_frames, speech_like, write_video
from system.cli import run
from system.errors import UserError
from system.reports import read_rows, write_rows
from system.sharding import Shard, merge_table
from training.synthetic_data import FACE_BOX, make_corpus


def test_shards_split_a_list_round_robin_and_name_their_files():
    items = list(range(7))
    shards = [Shard.parse(f"{k}/3") for k in range(3)]
    assert [s.select(items) for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum((s.select(items) for s in shards), [])) == items  # each item exactly once
    assert Shard.parse("2/3").path("out/scores.csv").as_posix() == "out/scores.shard-2-of-3.csv"
    assert Shard.parse(None, environ={}).path("scores.csv").as_posix() == "scores.csv"
    assert Shard.parse(None, environ={"RANK": "1", "WORLD_SIZE": "4"}) == Shard(1, 4)  # torchrun
    assert Shard.parse("0/2", environ={"RANK": "1", "WORLD_SIZE": "4"}) == Shard(0, 2)  # the flag wins
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(UserError, match="expected K/N with 0 <= K < N"):
            Shard.parse(bad)


def test_merge_restores_one_runs_order_and_refuses_an_incomplete_set(tmp_path, capsys):
    rows = [{"video": f"{i}.mp4", "lse_d": 7.5 + i, "lse_c": 2.0 + i / 8, "error": ""} for i in range(5)]
    whole = tmp_path / "whole.csv"
    write_rows(whole, rows)
    for k in range(2):
        write_rows(Shard(k, 2).path(tmp_path / "merged.csv"), Shard(k, 2).select(rows))
    assert run(merge_shards.main, [str(tmp_path / "merged.csv"), "--keep_shards"]) == 0
    assert (tmp_path / "merged.csv").read_bytes() == whole.read_bytes()
    assert "Average Confidence: 2.25" in capsys.readouterr().out
    (tmp_path / "merged.shard-1-of-2.csv").unlink()
    assert run(merge_shards.main, [str(tmp_path / "merged.csv")]) == 1
    assert "shard(s) 1 of 2 missing" in capsys.readouterr().err
    for k in range(2):  # shards with nothing to report: one run writes no such table either
        write_rows(Shard(k, 2).path(tmp_path / "failures.csv"), [])
    assert merge_table(tmp_path / "failures.csv") == [] and not (tmp_path / "failures.csv").exists()


def launch(args, rank=None, shard=None):
    """One process of a sharded run: with --shard, or with torchrun's environment variables."""
    env = dict(ENV)
    if rank is not None:
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    return subprocess.Popen(args + (["--shard", shard] if shard else []), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_preprocessing_processes_write_the_bytes_of_one_run(tmp_path):
    raw = tmp_path / "raw"
    make_corpus(raw, "raw", speakers=2, clips=2, seconds=0.6, seed=5)
    (raw / "speaker001" / "00000.mp4").write_bytes(b"not a video")  # a failure, listed by both
    box = [str(v) for v in FACE_BOX]
    common = ["--data_root", str(raw), "--quiet", "--audio_workers", "1", "--box", *box]
    whole = subprocess.run(script("preprocess.py", *common, "--preprocessed_root", tmp_path / "one"),
                           env=ENV, cwd=ROOT, capture_output=True, text=True, check=False)
    assert whole.returncode == 1 and "1 failed" in whole.stdout  # the broken video
    sharded = script("preprocess.py", *common, "--preprocessed_root", tmp_path / "two")
    processes = [launch(sharded, shard="0/2"), launch(sharded, rank=1)]  # a flag, and torchrun's variables
    for process in processes:
        process.communicate(timeout=300)
    assert sorted(p.returncode for p in processes) == [0, 1]  # the shard with the broken video says so
    parts = sorted(p.name for p in (tmp_path / "two").glob("*.shard-*"))
    assert parts == ["preprocess_failures.shard-0-of-2.csv", "preprocess_failures.shard-1-of-2.csv"]  # one empty
    # the joined list records a failure: as the whole run, the merge's exit status is 1
    assert run(merge_shards.main, [str(tmp_path / "two" / "preprocess_failures.csv")]) == 1
    assert tree(tmp_path / "two") == tree(tmp_path / "one")


@pytest.fixture(scope="module")
def scored_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("lse")
    weights = save_released(seeded(S(), 3), d / "syncnet_v2.model", module_prefix=False, wrapped=False)
    videos = d / "results"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"{i}.mp4", face_frames(14, (96, 96), seed=i), audio=speech_like(0.6, 16000, seed=i))
    (videos / "broken.mp4").write_bytes(b"not a video")
    return videos, weights


def test_two_lse_scoring_processes_and_a_merge_give_one_runs_table_and_averages(scored_folder, tmp_path):
    videos, weights = scored_folder
    lse = ["evaluation/scores_LSE/calculate_scores_LRS.py", "--data_root", videos, "--syncnet_checkpoint_path", weights,
           "--quiet"]
    whole = subprocess.run(script(*lse, "--scores", tmp_path / "one.csv"), env=ENV, cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert whole.returncode == 1  # broken.mp4 could not be scored
    shards = [launch(script(*lse, "--scores", tmp_path / "two.csv"), shard=f"{k}/2") for k in range(2)]
    for shard in shards:
        shard.communicate(timeout=300)
    # videos 0.mp4, 2.mp4 for shard 0; 1.mp4 and broken.mp4 for shard 1, which says so
    assert [shard.returncode for shard in shards] == [0, 1]
    assert [p.name for p in sorted(tmp_path.glob("two.shard-*"))] == ["two.shard-0-of-2.csv", "two.shard-1-of-2.csv"]
    merged = subprocess.run(script("merge_shards.py", tmp_path / "two.csv"), env=ENV, cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert merged.returncode == 1 and merged.stderr == f"1 failed: the error column of {tmp_path / 'two.csv'} says why\n"
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert merged.stdout.splitlines()[-2:] == whole.stdout.splitlines()[-2:]  # the same averages, digit for digit
    assert not list(tmp_path.glob("two.shard-*"))
    assert len(read_rows(tmp_path / "one.csv")) == 4
