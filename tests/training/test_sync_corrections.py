"""Out-of-sync clips corrected in the training data: shifted audio gives the in-sync clip's mel
windows, windows that would hold the shift's silence are never drawn, and --min_confidence."""

import hashlib
import json

import cv2
import numpy as np
import pytest
from scipy.io import wavfile
from test_training import restore_hparams  # noqa: F401 - autouse: the trainers' --hparams put back after each test

from system import cli
from system.errors import UserError
from system.reports import read_rows
from training import dataset, sync_corrections
from training.dataset import ExpertSamples, GeneratorSamples
from training.sync_corrections import (
    confident_clips,
    corrected_wav,
    read_corrections,
    usable_frames,
    write_corrections,
)
from training.synthetic_data import make_corpus

FRAMES = 50  # 2 s at 25 fps
SAMPLES_PER_FRAME = 640  # 16 kHz
SHIFTS = (1, -1, 3, -3, 8, -8)  # frames the audio comes late (> 0) or early (< 0)


def grey(k):
    return 5 * k


def frame_of(image):
    """The frame a (3, H, W) BGR tensor shows: each frame is a flat grey of 5 k."""
    return round(float(image.mean()) * 255 / 5)


def in_sync_audio():
    rng = np.random.default_rng(0)
    t = np.arange(FRAMES * SAMPLES_PER_FRAME) / 16000
    wav = 0.5 * np.sin(2 * np.pi * (200 + 900 * t) * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
    return np.round(wav * 20000).astype(np.int16)


def shifted(pcm, late):
    """The samples ``late`` frames late (early when negative), as an out-of-sync recording is: the
    same length, what runs off the end lost, the other end filled with quiet noise."""
    n = late * SAMPLES_PER_FRAME
    fill = np.random.default_rng(1).integers(-30, 30, abs(n)).astype(np.int16)
    return np.concatenate([fill, pcm[:len(pcm) - n]]) if n > 0 else np.concatenate([pcm[-n:], fill])


def write_clip(root, pcm, name="video/clip"):
    folder = root / name
    folder.mkdir(parents=True)
    for k in range(FRAMES):
        cv2.imwrite(str(folder / f"{k}.jpg"), np.full((24, 24, 3), grey(k), np.uint8))
    wavfile.write(folder / "audio.wav", 16000, pcm)
    return folder


@pytest.fixture(scope="module")
def in_sync(tmp_path_factory):
    """The in-sync clip and its mel (time-major), computed apart."""
    folder = write_clip(tmp_path_factory.mktemp("in_sync"), in_sync_audio())
    wav = dataset.audio.load_wav(folder / "audio.wav", 16000)
    return folder, dataset.audio.melspectrogram(wav).T.astype(np.float32)  # float32, as training takes it


def corrected_clip(root, late):
    folder = write_clip(root, shifted(in_sync_audio(), late))
    write_corrections(root, [{"clip": "video/clip", "offset": -late, "confidence": 7.5}])  # LSE's sign: late is -
    return folder


def audio_frame(window, mel):
    """The frame whose audio window (16, 80) is: the in-sync clip's, equal to the last bit."""
    frames = {mel[dataset.audio_window_start(k):][:16].tobytes(): k for k in range(FRAMES)}
    assert window.tobytes() in frames, "not a window of the in-sync clip"
    return frames[window.tobytes()]


def drawable(late, first, last):
    """Frames whose audio windows (those of frames frame + first .. frame + last) hold the
    clip's own audio: inside usable_frames with a frame to spare at a shifted end, as the STFT
    window reaches half a window (25 ms) beyond its frames."""
    usable = usable_frames(-late, FRAMES)
    low = usable.start + (1 if usable.start else 0)
    high = usable.stop - (1 if usable.stop < FRAMES else 0)
    return {k for k in range(FRAMES) if low <= k + first and k + last + 5 <= high and k + 4 < FRAMES}


@pytest.mark.parametrize("late", SHIFTS)
def test_corrected_audio_gives_the_in_sync_clip_s_mel_windows_and_only_usable_ones(in_sync, tmp_path, late):
    _, mel = in_sync
    folder = corrected_clip(tmp_path, late)
    expert, generator = ExpertSamples([folder], seed=late), GeneratorSamples([folder], seed=late)
    assert expert.offsets == {folder: -late}
    drawn = set()
    for n in range(600):
        faces, window, label, skipped = expert[n]
        frame = audio_frame(window[0].numpy().T, mel)  # equal, to the bit, to the in-sync clip's
        if label.item() == 1:
            assert frame_of(faces[:3]) == frame
        drawn.add(frame)
    assert drawn == drawable(late, 0, 0)  # every frame whose window is the clip's own audio, and no other
    drawn = set()
    for n in range(600):
        _, frame_mels, window, target, _ = generator[n]
        frame = frame_of(target[:, 0])
        assert audio_frame(window[0].numpy().T, mel) == frame
        assert [audio_frame(frame_mels[j, 0].numpy().T, mel) for j in range(5)] == list(range(frame - 1, frame + 4))
        drawn.add(frame)
    assert drawn == drawable(late, -1, 3)


def test_without_a_correction_a_clip_is_drawn_as_before(in_sync, tmp_path):
    folder, _ = in_sync
    plain = [ExpertSamples([folder], seed=4)[n] for n in range(20)]
    listed = write_clip(tmp_path, in_sync_audio())
    write_corrections(tmp_path, [{"clip": "video/clip", "offset": 0, "confidence": 9.0},
                                 {"clip": "video/other", "offset": 5, "confidence": 9.0}])
    assert ExpertSamples([listed], seed=4).offsets == {}
    for before, after in zip(plain, [ExpertSamples([listed], seed=4)[n] for n in range(20)]):
        assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_the_mel_cache_keys_on_the_offset(in_sync, tmp_path):
    folder = write_clip(tmp_path, shifted(in_sync_audio(), 3))
    before, own = ExpertSamples([folder]).mel(folder)  # cached, uncorrected
    assert own == range(len(before))
    write_corrections(tmp_path, [{"clip": "video/clip", "offset": -3, "confidence": 1.0}])
    after, own = ExpertSamples([folder]).mel(folder)
    assert len(after) == len(before) and not np.array_equal(after, before)
    assert np.array_equal(after[own.start:own.stop], in_sync[1][own.start:own.stop]) and own.stop < len(after) - 9


def test_corrected_wav_moves_the_sound_back_and_fills_with_silence():
    wav = np.arange(1, 11, dtype=np.float32)
    assert list(corrected_wav(wav, -2, 16000, 8000)) == [5, 6, 7, 8, 9, 10, 0, 0, 0, 0]  # 2 frames late: sooner
    assert list(corrected_wav(wav, 1, 16000, 8000)) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]  # 1 frame early: later
    assert corrected_wav(wav, 0, 16000, 8000) is wav
    assert (usable_frames(-2, 5), usable_frames(1, 5), usable_frames(0, 5)) == (range(0, 3), range(1, 5), range(0, 5))


def test_corrections_are_read_back_and_a_malformed_file_is_one_line(tmp_path):
    write_corrections(tmp_path, [{"clip": "v/a", "offset": -3, "confidence": 6.25, "extra": 1}])
    assert read_corrections(tmp_path) == {"v/a": (-3, 6.25)}
    assert read_corrections(tmp_path / "nowhere") == {}
    (tmp_path / "sync_corrections.csv").write_text("clip,offset,confidence\nv/a,1.5,2\n")
    with pytest.raises(UserError, match=r"sync_corrections.csv, line 2: needs the columns clip, offset, confidence"):
        read_corrections(tmp_path)


def test_min_confidence_leaves_out_the_clips_below_it_and_names_them(tmp_path):
    clips = ["v/a", "v/b", "v/c", "w/d"]
    with pytest.raises(UserError, match=r"^--min_confidence 3 needs the confidences of .*sync_corrections.csv, "
                                        r"which does not exist: run sync_audit.py"):
        confident_clips(tmp_path, clips, 3)
    write_corrections(tmp_path, [{"clip": "v/a", "offset": 0, "confidence": 2.5},
                                 {"clip": "v/b", "offset": -4, "confidence": 3.0},
                                 {"clip": "w/d", "offset": 2, "confidence": 0.5}])
    assert confident_clips(tmp_path, clips, 3) == (["v/b", "v/c"], ["v/a", "w/d"])  # v/c: not audited, kept
    assert sync_corrections.left_out_line(tmp_path, ["v/a", "w/d"], 3) == \
        f"left out 2 clip(s) whose sync confidence in {tmp_path / 'sync_corrections.csv'} is below 3: v/a, w/d"
    with pytest.raises(UserError, match=r"^--min_confidence 9 leaves out all 3 clips"):
        confident_clips(tmp_path, ["v/a", "v/b", "w/d"], 9)
    assert sync_corrections.summary(tmp_path) == \
        f"sync corrections: {tmp_path / 'sync_corrections.csv'} shifts the audio of 2 of its 3 clips (delete it to undo)"


def corrected_corpus(root):
    """A tiny synthetic corpus, half of it out of sync, corrected as sync_audit.py --correct would."""
    make_corpus(root, speakers=6, clips=1, seconds=1.2, seed=3, av_offset_share=0.5, av_offset_max=3)
    truth = read_rows(root / "av_offsets.csv")
    write_corrections(root, [{"clip": row["clip"], "offset": row["offset"], "confidence": 1.0 + n}
                             for n, row in enumerate(truth)])
    return [row["clip"] for row in truth]


def test_make_filelists_leaves_out_the_clips_below_min_confidence_names_and_lists_them(tmp_path, capsys):
    import make_filelists

    clips = corrected_corpus(tmp_path / "corpus")
    lists = tmp_path / "lists"
    argv = ["--preprocessed_root", str(tmp_path / "corpus"), "--filelist_dir", str(lists), "--val", "0.2", "--test", "0"]
    assert make_filelists.main([*argv, "--min_confidence", "3"]) == 0
    out = capsys.readouterr().out
    assert f"left out 2 clip(s) whose sync confidence in {tmp_path / 'corpus' / 'sync_corrections.csv'} is below 3: " \
        f"{clips[0]}, {clips[1]} (all: {lists / 'low_confidence.txt'})" in out
    listed = [line for split in ("train", "val", "test") for line in (lists / f"{split}.txt").read_text().split()]
    assert sorted(listed) == clips[2:] and (lists / "low_confidence.txt").read_text().split() == clips[:2]
    assert make_filelists.main([*argv, "--overwrite"]) == 0  # without the flag: every clip, and no stale list
    assert "left out" not in capsys.readouterr().out and not (lists / "low_confidence.txt").exists()

    for flags, message in ((["--min_confidence", "7"], "--min_confidence 7 leaves out all 6 clips"),
                           (["--min_confidence", "-1"], "--min_confidence must be a finite number, 0 or more, not -1")):
        assert cli.run(make_filelists.main, [*argv, "--overwrite", *flags]) == 1
        assert capsys.readouterr().err.startswith(f"error: {message}")
    (tmp_path / "corpus" / "sync_corrections.csv").unlink()
    assert cli.run(make_filelists.main, [*argv, "--overwrite", "--min_confidence", "3"]) == 1
    assert capsys.readouterr().err == f"error: --min_confidence 3 needs the confidences of " \
        f"{tmp_path / 'corpus' / 'sync_corrections.csv'}, which does not exist: run sync_audit.py --data_root " \
        f"{tmp_path / 'corpus'} --correct first\n"


def test_the_training_filelist_leaves_out_the_clips_below_min_confidence(tmp_path, capsys):
    root = tmp_path / "corpus"
    clips = corrected_corpus(root)
    (root / "filelists" / "all.txt").write_text("".join(f"{clip}\n" for clip in clips + clips[:1]))
    assert dataset.read_filelist(root / "filelists", "all", root) == [root / clip for clip in clips + clips[:1]]
    assert dataset.read_filelist(root / "filelists", "all", root, 2) == [root / clip for clip in clips[1:]]
    assert capsys.readouterr().out == f"{root / 'filelists' / 'all.txt'}: left out 2 clip(s) whose sync confidence " \
        f"in {root / 'sync_corrections.csv'} is below 2: {clips[0]}, {clips[0]}\n"


def test_a_trainer_says_it_corrects_records_the_file_and_names_a_changed_one_on_resume(tmp_path, capsys):
    import color_syncnet_train

    root = tmp_path / "corpus"
    corrected_corpus(root)
    out = tmp_path / "expert"
    argv = ["--data_root", str(root), "--checkpoint_dir", str(out), "--eval_batches", "1", "--device", "cpu", "--quiet",
            "--hparams", "num_workers=0,syncnet_batch_size=2,syncnet_eval_interval=10,syncnet_checkpoint_interval=1"]
    path = root / "sync_corrections.csv"
    assert color_syncnet_train.main([*argv, "--max_steps", "1"]) == 0
    assert f"sync corrections: {path} shifts the audio of 3 of its 6 clips (delete it to undo)\n" in capsys.readouterr().out
    config = json.loads((out / "run.json").read_text())
    assert (config["sync_corrections"], config["sync_corrections_sha256"], config["min_confidence"]) == \
        (str(path), hashlib.sha256(path.read_bytes()).hexdigest(), None)
    path.unlink()  # the correction undone
    assert color_syncnet_train.main([*argv, "--max_steps", "2", "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert "sync corrections:" not in resumed
    assert f"note: training settings differ from checkpoint_step000000001.pth's: sync_corrections: '{path}' -> None, " \
        f"sync_corrections_sha256: '{config['sync_corrections_sha256']}' -> None\n" in resumed
    assert cli.run(color_syncnet_train.main, [*argv, "--min_confidence", "1"]) == 1
    assert "error: --min_confidence 1 needs the confidences of" in capsys.readouterr().err


def test_a_trainer_leaves_out_the_clips_below_min_confidence_and_names_them(tmp_path, capsys):
    import color_syncnet_train

    root = tmp_path / "corpus"
    corrected_corpus(root)
    train = [line.strip() for line in (root / "filelists" / "train.txt").open()]
    unsure = train[:2]  # the audit was unsure of these two training clips
    write_corrections(root, [{"clip": row["clip"], "offset": row["offset"], "confidence": 0.5 if row["clip"] in unsure
                              else 5.0} for row in read_rows(root / "av_offsets.csv")])
    assert color_syncnet_train.main(["--data_root", str(root), "--filelist_dir", str(root / "filelists"),
                                     "--checkpoint_dir", str(tmp_path / "expert"), "--eval_batches", "1", "--hparams",
                                     "num_workers=0,syncnet_batch_size=2,syncnet_eval_interval=1000", "--device", "cpu",
                                     "--quiet", "--max_steps", "1", "--min_confidence", "1"]) == 0
    out = capsys.readouterr().out
    assert f"train.txt: left out 2 clip(s) whose sync confidence in {root / 'sync_corrections.csv'} is below 1: " \
        f"{unsure[0]}, {unsure[1]}" in out
    assert f"{len(train) - 2} training clips" in out
