"""No output ever replaces an input or anything but a regular file (atomic_write.check_output,
used by every writer through atomic_output, and by each script before its work)."""

import os
from pathlib import Path

import pytest
import torch
from support.synthetic_certificates import write_signing_files
from support.synthetic_weights import save_released, seeded

import inference
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import SyncNet_color, Wav2Lip
from system.atomic_write import atomic_output, check_output, reading
from system.cli import run
from system.errors import UserError

BOX = ("20", "90", "30", "100")


def write(path, data=b"data"):
    Path(path).write_bytes(data)
    return path


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# --- the rule itself ---------------------------------------------------------------------------

def test_a_new_file_a_regular_file_and_a_dangling_link_are_outputs(tmp_path):
    assert check_output(tmp_path / "new.mp4") == tmp_path / "new.mp4"
    assert check_output(write(tmp_path / "old.mp4")) == tmp_path / "old.mp4"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.mp4")
    assert check_output(tmp_path / "dangling") == tmp_path / "dangling"


@pytest.mark.parametrize("what", ["folder", "fifo", "link to a device", "link to a folder", "link to a fifo"])
def test_what_is_not_a_regular_file_is_never_an_output(tmp_path, fifo, what):
    (tmp_path / "folder").mkdir()
    path = {"folder": tmp_path / "folder", "fifo": fifo}.get(what, tmp_path / "link")
    if what.startswith("link"):
        path.symlink_to({"link to a device": "/dev/null", "link to a folder": tmp_path / "folder",
                         "link to a fifo": fifo}[what])
    kind = {"folder": "a folder", "fifo": "a FIFO (a named pipe)", "link to a device": "a character device",
            "link to a folder": "a folder", "link to a fifo": "a FIFO (a named pipe)"}[what]
    with pytest.raises(UserError) as caught:
        check_output(path, "--outfile")
    assert str(caught.value) == (f"--outfile {path} is {kind}{' (through a symlink)' * what.startswith('link')}: "
                                 "an output replaces only a regular file; name a file")


def test_a_part_of_the_path_that_is_a_file_is_named(tmp_path):
    with pytest.raises(UserError, match="a part of the path before its name is a file, not a folder"):
        check_output(write(tmp_path / "model.pth") / "out.mp4", "--outfile")


def test_a_file_the_run_reads_is_refused_by_name_link_and_hard_link(tmp_path):
    weights = write(tmp_path / "wav2lip.pth")
    (tmp_path / "link.mp4").symlink_to(weights)
    os.link(weights, tmp_path / "hard.mp4")
    with reading({"--checkpoint_path": weights}):
        for path in (weights, tmp_path / "link.mp4", tmp_path / "hard.mp4"):
            with pytest.raises(UserError, match=r"is the --checkpoint_path file.* that this run reads: it would be "
                                                 "overwritten; choose another name"):
                check_output(path, "--outfile")
    for path in (weights, tmp_path / "link.mp4", tmp_path / "hard.mp4"):  # the run is over: outputs again
        assert check_output(path, "--outfile") == path


def test_inputs_given_to_the_check_are_refused_too(tmp_path):
    key = write(tmp_path / "key.pem")
    with pytest.raises(UserError, match="is the --c2pa_key file"):
        check_output(key, "--outfile", {"--c2pa_key": key, "--face": None})


def test_atomic_output_refuses_an_input_and_leaves_it_whole(tmp_path):
    weights = write(tmp_path / "wav2lip.pth", b"weights")
    with reading({"--checkpoint_path": weights}), pytest.raises(UserError):
        with atomic_output(weights) as temporary:
            write(temporary, b"video")
    assert weights.read_bytes() == b"weights" and sorted(tmp_path.iterdir()) == [weights]


def test_atomic_output_writes_through_a_symlink(tmp_path):
    (tmp_path / "disk").mkdir()
    target = write(tmp_path / "disk" / "result.mp4", b"old")
    link = tmp_path / "result.mp4"
    link.symlink_to(target)
    with atomic_output(link) as temporary:
        write(temporary, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["result.mp4"]


def test_atomic_output_never_opens_a_fifo_and_checks_again_before_the_rename(tmp_path, fifo):
    with pytest.raises(UserError, match="is a FIFO"):
        with atomic_output(fifo):
            pass
    target = tmp_path / "out.mp4"
    with pytest.raises(UserError, match="is a folder"):
        with atomic_output(target) as temporary:
            write(temporary, b"video")
            target.mkdir()  # the path changed while the output was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "pipe"] and target.is_dir()


# --- inference.py: refused in one line, before the work, the input untouched -------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    save_released(seeded(SyncNet_color(), 1), d / "sync.pth")
    write_media(d / "speech.wav", speech_like(0.6)[None], 16000, audio_codec="pcm_s16le")
    write_video(d / "face.mp4", face_frames(12))
    write_signing_files(d)
    return d


def lip_sync(files, outfile, *extra):
    audio_flag = [] if "--audio" in extra else ["--audio", files / "speech.wav"]  # --audio twice: two voices
    argv = ["--checkpoint_path", files / "gen.pth", "--face", files / "face.mp4", *audio_flag,
            "--outfile", outfile, "--box", *BOX, "--quiet", *extra]
    return run(inference.main, list(map(str, argv)))


SIGNED = ("--c2pa_cert", "chain.pem", "--c2pa_key", "key.pem")


@pytest.mark.parametrize("case", ["checkpoint", "expert", "key", "audio", "link to checkpoint"])
def test_an_outfile_naming_an_input_is_refused_before_the_work(files, tmp_path, capsys, case):
    extra = {"expert": ["--syncnet_checkpoint_path", files / "sync.pth"],
             "key": [flag if flag.startswith("--") else files / flag for flag in SIGNED]}.get(case, [])
    outfile = {"checkpoint": files / "gen.pth", "expert": files / "sync.pth", "key": files / "key.pem",
               "audio": files / "speech.wav", "link to checkpoint": tmp_path / "result.mp4"}[case]
    if case == "link to checkpoint":
        outfile.symlink_to(files / "gen.pth")
    before = {path: path.read_bytes() for path in files.iterdir()}
    assert lip_sync(files, outfile, *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --outfile {outfile} is the --") and "would be overwritten" in err[0]
    assert {path: path.read_bytes() for path in files.iterdir()} == before


@pytest.mark.parametrize("case", ["folder", "link to /dev/null", "fifo"])
def test_an_outfile_that_is_no_regular_file_is_refused_before_the_work(files, tmp_path, capsys, fifo, case):
    outfile = {"folder": tmp_path, "link to /dev/null": tmp_path / "null.mp4", "fifo": fifo}[case]
    if case == "link to /dev/null":
        outfile.symlink_to("/dev/null")
    # The audio is missing: the output is refused before any input is read.
    assert lip_sync(files, outfile, "--audio", tmp_path / "missing.wav") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "an output replaces only a regular file" in err[0], err
    assert os.path.islink(tmp_path / "null.mp4") or case != "link to /dev/null"


def test_the_sync_json_beside_the_outfile_may_not_be_an_input_either(files, tmp_path, capsys):
    outfile = tmp_path / "gen.mp4"
    (tmp_path / "gen.mp4.sync.json").symlink_to(files / "sync.pth")
    assert lip_sync(files, outfile, "--syncnet_checkpoint_path", files / "sync.pth") == 1
    assert "--outfile's .sync.json" in capsys.readouterr().err
    assert torch.load(files / "sync.pth", weights_only=True)  # still the expert


# --- the other scripts -----------------------------------------------------------------------

def test_merge_shards_refuses_a_table_that_is_one_of_its_shards_before_merging(tmp_path, capsys):
    import merge_shards
    from system.reports import write_rows
    from system.sharding import Shard

    rows = [{"video": f"{i}.mp4", "error": ""} for i in range(4)]
    for k in range(2):
        write_rows(Shard(k, 2).path(tmp_path / "failures.csv"), Shard(k, 2).select(rows))
    (tmp_path / "failures.csv").symlink_to(tmp_path / "failures.shard-0-of-2.csv")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert run(merge_shards.main, [str(tmp_path / "failures.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'failures.csv'} is the shard failures.shard-0-of-2.csv file "
                   f"({tmp_path / 'failures.shard-0-of-2.csv'}) (through a symlink) that this run reads: it would be "
                   "overwritten; choose another name"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no shard removed either


@pytest.mark.parametrize("source", ["--subtitles", "--text_file"])
def test_dub_refuses_an_outfile_that_is_its_subtitles_or_text_before_any_speech(files, tmp_path, source):
    import dub

    words = tmp_path / ("talk.srt" if source == "--subtitles" else "talk.txt")
    words.write_text("1\n00:00:00,100 --> 00:00:00,500\nHi\n" if source == "--subtitles" else "Hi", encoding="utf-8")
    before = words.read_bytes()
    with pytest.raises(UserError) as caught:
        dub.main(["--checkpoint_path", str(files / "gen.pth"), "--face", str(files / "face.mp4"), "--outfile", str(words),
                  "--box", *BOX, "--quiet", source, str(words)])
    assert str(caught.value).startswith(f"--outfile {words} is the {source} file that this run reads")
    assert words.read_bytes() == before and sorted(tmp_path.iterdir()) == [words]


def test_a_trainer_refuses_an_expert_named_as_its_own_checkpoints_before_any_work(files, tmp_path, capsys):
    import wav2lip_train

    folder = tmp_path / "run"
    folder.mkdir()
    expert = folder / "checkpoint_step000000001.pth"  # the step-1 save would replace it
    expert.write_bytes((files / "sync.pth").read_bytes())
    (tmp_path / "data").mkdir()
    argv = ["--data_root", tmp_path / "data", "--checkpoint_dir", folder, "--syncnet_checkpoint_path", expert,
            "--start_over", "--device", "cpu", "--quiet"]
    assert run(wav2lip_train.main, list(map(str, argv))) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --syncnet_checkpoint_path {expert} lies in --checkpoint_dir {folder} under a name this run's "
        "checkpoints take: it would be overwritten; move the expert out of that folder"]
    assert expert.read_bytes() == (files / "sync.pth").read_bytes() and sorted(folder.iterdir()) == [expert]


def test_a_save_that_would_replace_a_file_the_trainer_reads_is_refused(tmp_path):
    from models.checkpoint import save_checkpoint
    from training.checkpoints import checkpoint_file

    expert = write(tmp_path / "expert.pth", b"expert")
    target = checkpoint_file(tmp_path / "run", "", 3000)
    target.parent.mkdir()
    target.symlink_to(expert)
    with reading({"--syncnet_checkpoint_path": expert}), pytest.raises(UserError, match="is the --syncnet_checkpoint_path"):
        save_checkpoint(target, seeded(SyncNet_color(), 0))
    assert expert.read_bytes() == b"expert"


def one_error(main, argv, capsys):
    assert run(main, list(map(str, argv))) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_every_script_refuses_its_outputs_before_the_work(tmp_path, capsys, fifo):
    """Each writer's output named as an input, a folder or a FIFO: one line, nothing written."""
    import export
    import make_filelists
    import preprocess
    import sync_audit
    from evaluation import fid
    from evaluation.scores_LSE import calculate_scores_LRS

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").mkdir()
    assert one_error(make_filelists.main, ["--preprocessed_root", tmp_path, "--filelist_dir", tmp_path / "lists"],
                     capsys) == f"error: --filelist_dir {tmp_path / 'lists' / 'val.txt'} is a folder: an output replaces " \
                                "only a regular file; name a file"
    model = write(tmp_path / "model.onnx", b"PK\x03\x04")
    assert "is the checkpoint file that this run reads" in one_error(export.main, [model], capsys)
    stats = write(tmp_path / "real.npz")
    assert one_error(fid.main, [stats, stats, "--save_stats"], capsys).startswith(
        f"error: the second PATH {stats} is the first PATH file that this run reads")
    videos = tmp_path / "generated"
    videos.mkdir()
    video = write(videos / "0.mp4")
    assert one_error(calculate_scores_LRS.main, ["--data_root", videos, "--scores", video], capsys).startswith(
        f"error: --scores {video} is the video 0.mp4 file that this run reads")
    (tmp_path / "audit.png").mkdir()
    assert one_error(sync_audit.main, ["--data_root", videos, "--syncnet_checkpoint_path", stats, "--report",
                                       tmp_path / "audit.csv"], capsys) == \
        f"error: the histogram {tmp_path / 'audit.png'} is a folder: an output replaces only a regular file; name a file"
    weights = write(tmp_path / "weights.json")
    assert one_error(sync_audit.main, ["--data_root", videos, "--syncnet_checkpoint_path", weights, "--report",
                                       weights], capsys).startswith(
        f"error: --report {weights} is the --syncnet_checkpoint_path file that this run reads")
    (tmp_path / "raw" / "spk").mkdir(parents=True)
    write(tmp_path / "raw" / "spk" / "clip.mp4")
    (tmp_path / "pre").mkdir()
    os.mkfifo(tmp_path / "pre" / "preprocess_failures.csv")
    assert "is a FIFO (a named pipe)" in one_error(
        preprocess.main, ["--data_root", tmp_path / "raw", "--preprocessed_root", tmp_path / "pre", "--box", 0, 8, 0, 8],
        capsys)
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["preprocess_failures.csv"]
    assert model.read_bytes() == b"PK\x03\x04" and video.read_bytes() == stats.read_bytes() == b"data"


def test_a_symlink_loop_and_a_link_into_a_missing_folder_are_refused(tmp_path):
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    with pytest.raises(UserError, match="is a symlink that leads back to itself"):
        check_output(tmp_path / "loop.mp4", "--outfile")
    (tmp_path / "nas.mp4").symlink_to(tmp_path / "mnt" / "nas" / "x.mp4")  # an unmounted drive's mount point
    with pytest.raises(UserError, match="whose folder does not exist"):
        with atomic_output(tmp_path / "nas.mp4"):
            pass
    assert not (tmp_path / "mnt").exists()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_lock_file_that_is_no_regular_file_is_never_written_through(tmp_path, kind):
    from training import folder_lock

    victim = write(tmp_path / "victim.txt", b"precious results")
    lock = tmp_path / "run" / folder_lock.LOCK_NAME
    lock.parent.mkdir()
    if kind == "symlink":
        lock.symlink_to(victim)
    else:
        os.mkfifo(lock)
    with pytest.raises(UserError, match="a lock file must be"):
        folder_lock.hold(lock.parent)
    assert victim.read_bytes() == b"precious results"


@pytest.mark.parametrize("flags, message", [
    (["--seconds", "nan"], "--seconds must be a finite number from 0 to 3600, not nan"),
    (["--seconds", "1e300"], "--seconds must be a finite number from 0 to 3600, not 1e+300"),
    (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, not -1"),
    (["--filelists", "LISTS"], "is a folder: an output replaces only a regular file"),
])
def test_synthetic_corpus_refuses_bad_values_and_outputs_before_the_work(tmp_path, capsys, flags, message):
    import synthetic_corpus

    (tmp_path / "lists" / "val.txt").mkdir(parents=True)
    flags = [str(tmp_path / "lists") if flag == "LISTS" else flag for flag in flags]
    assert message in one_error(synthetic_corpus.main, ["--out", tmp_path / "corpus", "--speakers", 2, *flags], capsys)
    assert not (tmp_path / "corpus").exists()


def test_a_trainer_refuses_a_seed_numpy_cannot_take(tmp_path, capsys):
    import color_syncnet_train

    (tmp_path / "data").mkdir()
    assert one_error(color_syncnet_train.main, ["--data_root", tmp_path / "data", "--checkpoint_dir", tmp_path / "run",
                                                "--seed", 99999999999999999999], capsys) == \
        "error: --seed must be a whole number from 0 to 4294967295, not 99999999999999999999"
    assert not (tmp_path / "run").exists()
