"""The training samples: windows, wrong windows and audio windows exactly as the reference trainers draw them."""

import cv2
import numpy as np
import pytest

import audio
from training import dataset
from training.dataset import DataError, ExpertSamples, GeneratorSamples

FRAMES = [k for k in range(20) if k != 12]  # a hand-made clip with frame 12 missing (no face there)
SECONDS = 0.9  # 73 mel frames: audio windows exist for frames 0..18 only (frame 19 starts at 60)


def grey(k):
    return 20 + 10 * k


def frame_id(image):
    """The frame a (3, H, W) BGR tensor shows: each frame is a flat grey of 20 + 10 k."""
    return round((float(image.mean()) * 255 - 20) / 10)


@pytest.fixture
def clip(tmp_path):
    folder = tmp_path / "video" / "clip"
    folder.mkdir(parents=True)
    for k in FRAMES:
        cv2.imwrite(str(folder / f"{k}.jpg"), np.full((120, 110, 3), grey(k), np.uint8))
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * 16000)) / 16000
    audio.save_wav(np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.1 * rng.standard_normal(len(t)), folder / "audio.wav", 16000)
    mel = audio.melspectrogram(audio.load_wav(folder / "audio.wav", 16000)).T  # time-major, computed apart
    return folder, mel


def mel_start(window, mel):
    """Which mel frame a (16, 80) window starts at."""
    starts = [s for s in range(len(mel) - 15) if np.allclose(mel[s:s + 16], window, atol=1e-5)]
    assert len(starts) == 1
    return starts[0]


def test_expert_samples_pair_the_frames_audio_with_its_own_or_a_wrong_window(clip):
    folder, mel = clip
    dataset = ExpertSamples([folder], seed=1)
    labels = []
    for n in range(60):
        faces, window_mel, label, skipped = dataset[n]
        assert faces.shape == (15, 48, 96) and window_mel.shape == (1, 80, 16) and skipped == 0
        ids = [frame_id(faces[3 * t:3 * t + 3]) for t in range(5)]
        assert ids == list(range(ids[0], ids[0] + 5)) and 12 not in ids  # 5 consecutive existing frames
        start = mel_start(window_mel[0].numpy().T, mel)
        audio_frame = next(k for k in FRAMES if int(80 * k / 25) == start)  # the frame whose audio it is
        assert audio_frame <= 18  # frames whose audio window runs past the end are redrawn
        if label.item() == 1:
            assert ids[0] == audio_frame
        else:
            assert ids[0] != audio_frame
        labels.append(label.item())
    assert 15 < sum(labels) < 45  # positives with probability 1/2


def test_generator_samples_follow_the_reference_windows(clip):
    folder, mel = clip
    dataset = GeneratorSamples([folder], seed=2)
    starts = set()
    for n in range(40):
        faces, frame_mels, window_mel, target, _ = dataset[n]
        assert faces.shape == (6, 5, 96, 96) and frame_mels.shape == (5, 1, 80, 16)
        assert window_mel.shape == (1, 80, 16) and target.shape == (3, 5, 96, 96)
        ids = [frame_id(target[:, t]) for t in range(5)]
        wrong = [frame_id(faces[3:, t]) for t in range(5)]
        start = ids[0]
        assert ids == list(range(start, start + 5)) and wrong == list(range(wrong[0], wrong[0] + 5))
        assert wrong[0] != start and 12 not in ids + wrong
        # The input is the window with its lower half zeroed, beside the wrong window.
        assert faces[:3, :, 48:].abs().max() == 0 and np.allclose(faces[:3, :, :48], target[:, :, :48])
        assert mel_start(window_mel[0].numpy().T, mel) == int(80 * start / 25)
        for j in range(5):  # per-frame audio starts one frame earlier: frame start+j gets window start+j-1
            assert mel_start(frame_mels[j, 0].numpy().T, mel) == int(80 * (start + j - 1) / 25)
        assert start >= 1
        starts.add(start)
    assert len(starts) > 3


def test_unreadable_frames_and_audio_are_skipped_and_counted(clip, tmp_path):
    folder, _ = clip
    (folder / "3.jpg").write_bytes(b"")  # unreadable crop
    dataset = ExpertSamples([folder], seed=0)
    skipped = sum(dataset[n][-1] for n in range(40))
    assert skipped > 0
    broken = tmp_path / "video" / "broken"
    broken.mkdir()
    for k in range(20):
        cv2.imwrite(str(broken / f"{k}.jpg"), np.full((50, 50, 3), 90, np.uint8))
    (broken / "audio.wav").write_bytes(b"RIFF not really")
    dataset = GeneratorSamples([broken, folder], seed=0)
    for n in range(10):
        assert dataset[n][0].shape == (6, 5, 96, 96)  # only the readable clip gives samples
    assert dataset.dropped == {broken}


def test_a_dataset_with_nothing_usable_stops_with_a_clear_message(tmp_path):
    short = tmp_path / "video" / "short"
    short.mkdir(parents=True)
    for k in range(15):  # 15 crops: a clip needs more
        cv2.imwrite(str(short / f"{k}.jpg"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match=r"no usable training sample in 1 clips .*1 have <= 15 face crops"):
        ExpertSamples([short])[0]


def test_filelists_are_read_and_written_split_by_video(tmp_path):
    root = tmp_path / "pre"
    for video in range(10):
        for clip in range(2):
            folder = root / f"v{video}" / f"c{clip}"
            folder.mkdir(parents=True)
            (folder / "audio.wav").write_bytes(b"")
            for k in range(16 if clip == 0 or video else 10):
                (folder / f"{k}.jpg").write_bytes(b"")
    counts = dataset.write_filelists(root, tmp_path / "lists", val_fraction=0.2, test_fraction=0.1)
    assert counts == {"train": 13, "val": 4, "test": 2}  # v0/c1 has too few crops
    lists = {split: (tmp_path / "lists" / f"{split}.txt").read_text().split() for split in dataset.SPLITS}
    videos = [{entry.split("/")[0] for entry in entries} for entries in lists.values()]
    assert not (videos[0] & videos[1] or videos[0] & videos[2] or videos[1] & videos[2])
    assert not any("v0/c1" in entries for entries in lists.values())
    assert dataset.read_filelist(tmp_path / "lists", "val", root) == [root / entry for entry in lists["val"]]
    with pytest.raises(DataError, match="exists; pass --overwrite"):
        dataset.write_filelists(root, tmp_path / "lists")
    # A clip that preprocess.py has not finished (no marker while others have one) is left out.
    for folder in root.glob("*/*"):
        (folder / dataset.DONE_MARKER).touch()
    (root / "v5" / "c0" / dataset.DONE_MARKER).unlink()
    assert "v5/c0" not in dataset.clip_folders(root)
    with pytest.raises(DataError, match=r"no filelist .*train.txt: write"):
        dataset.read_filelist(tmp_path / "nowhere", "train", root)


def test_a_sample_depends_on_its_number_alone_not_on_the_workers(tmp_path):
    """Exact resume and per-rank streams rest on this: sample n is a function of (seed, n)."""
    import torch

    from training.batches import StepSampler

    root = tmp_path / "pre"
    for c in range(8):
        folder = root / "v" / f"c{c}"
        folder.mkdir(parents=True)
        for k in range(20):
            cv2.imwrite(str(folder / f"{k}.jpg"), np.full((40, 40, 3), grey(k % 20), np.uint8))
        audio.save_wav(np.random.default_rng(c).standard_normal(16000), folder / "audio.wav", 16000)
    clips = sorted(root.glob("v/*"))

    def first_batches(seed, workers, rank=0, first=0):
        torch.manual_seed(workers)  # the workers' torch seeds differ: it must not matter
        sampler = StepSampler(4, rank, 2, steps_per_epoch=3)
        sampler.first = first
        loader = torch.utils.data.DataLoader(ExpertSamples(clips, seed=seed), batch_sampler=sampler,
                                             num_workers=workers, multiprocessing_context="spawn" if workers else None)
        return [batch[0] for batch in loader]

    in_process, spawned = first_batches("0/train", 0), first_batches("0/train", 2)
    assert len(in_process) == 3 and all(torch.equal(a, b) for a, b in zip(in_process, spawned))
    resumed = first_batches("0/train", 0, first=1)  # from step 1: the same batches 1 and 2
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(in_process[1:], resumed))
    other_rank, other_seed = first_batches("0/train", 0, rank=1), first_batches("1/train", 0)
    assert not torch.equal(in_process[0], other_rank[0]) and not torch.equal(in_process[0], other_seed[0])


def usable_clip(folder, crops=20):
    """A clip folder preprocess.py would have marked done: ``crops`` face crops and audio.wav."""
    folder.mkdir(parents=True)
    for k in range(crops):  # not cv2.imwrite: OpenCV cannot take a name that is not UTF-8
        (folder / f"{k}.jpg").write_bytes(cv2.imencode(".jpg", np.full((40, 40, 3), grey(k), np.uint8))[1].tobytes())
    audio.save_wav(np.random.default_rng(crops).standard_normal(16000), folder / "audio.wav", 16000)
    (folder / dataset.DONE_MARKER).write_text(f"{crops}\n")
    return folder


def test_clip_names_with_spaces_and_any_bytes_survive_the_filelists(tmp_path, capsys):
    root = tmp_path / "pre"
    names = ["v 1/c 1", "v 1/ lead", "v 2/NF", "v 2/tail ", "v\udce93/c\tx", "v4/c4"]
    for name in names:
        usable_clip(root / name)
    dataset.write_filelists(root, tmp_path / "lists", val_fraction=0, test_fraction=0)
    assert sorted(dataset.read_filelist(tmp_path / "lists", "train", root)) == sorted(root / name for name in names)
    # The reference's lists carry a second field ("NF", "MV"): a line naming no folder whole is cut there.
    (tmp_path / "lists" / "val.txt").write_text("v4/c4 NF\nv 1/c 1\n")
    assert dataset.read_filelist(tmp_path / "lists", "val", root) == [root / "v4/c4", root / "v 1/c 1"]
    assert capsys.readouterr().err == ""


def test_filelist_entries_naming_no_folder_are_counted_not_dropped_silently(tmp_path, capsys):
    root = tmp_path / "pre"
    usable_clip(root / "v" / "here")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("v/here\nv/gone\nw/gone NF\n")
    assert dataset.read_filelist(lists, "train", root) == [root / "v" / "here"]
    assert capsys.readouterr().err == (f"warning: {lists / 'train.txt'}: 2 of 3 entries name no folder under {root} "
                                       f"(first: v/gone); training goes on without them\n")
    (lists / "val.txt").write_text("x/gone\n")
    with pytest.raises(DataError, match=r"val.txt: none of its 1 entries names a folder under .*\(first: x/gone\)"):
        dataset.read_filelist(lists, "val", root)


def test_a_clip_whose_audio_holds_nan_is_skipped_and_counted_with_a_warning(clip, tmp_path, capsys):
    from scipy.io import wavfile

    folder, _ = clip
    damaged = usable_clip(tmp_path / "video" / "nan")
    samples = np.sin(np.arange(16000) / 10).astype(np.float32)
    samples[::1000] = np.nan  # in every mel window
    wavfile.write(damaged / "audio.wav", 16000, samples)  # a float WAV can hold NaN
    samples = GeneratorSamples([damaged, folder], seed=0)
    draws = [samples[n] for n in range(10)]
    assert all(np.isfinite(draw[1].numpy()).all() for draw in draws)
    assert sum(draw[-1] for draw in draws) >= 1 and samples.dropped == {damaged}
    assert capsys.readouterr().err == (f"warning: skipping clip {damaged}: {damaged / 'audio.wav'}: the audio holds "
                                       f"16 NaN sample(s) of 16,000; repair or re-export it\n")
