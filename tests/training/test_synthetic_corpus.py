"""The synthetic corpus: mouths that follow what is said, in shape as well as in opening; clips out of sync."""

import itertools
import random

import numpy as np
import pytest

import audio
import training.synthetic_data as sc
from system import cli
from system.reports import read_rows
from training.sync_corrections import corrected_wav


def spectral_peak(wav, rate=16000):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    freqs = np.fft.rfftfreq(len(wav), 1 / rate)
    band = freqs > 600  # above F1 of every vowel: where F2 sets them apart
    return freqs[band][np.argmax(spectrum[band])]


def test_vowels_differ_in_mouth_shape_and_in_sound_at_equal_loudness():
    speaker = sc.random_speaker(random.Random(0))
    syllables = {vowel: [(0.0, 0.4, vowel, 1.0)] for vowel in ("i", "u")}
    mouths = {vowel: sc.mouth_at(s, 0.2) for vowel, s in syllables.items()}
    assert mouths["i"][0] > 2 * mouths["u"][0]  # spread lips against rounded ones
    peaks = {vowel: spectral_peak(sc.speech(speaker, s, 0.4, np.random.default_rng(0))[1600:4800])
             for vowel, s in syllables.items()}
    assert peaks["i"] > 1800 and peaks["u"] < 1200  # F2 of i (2300 Hz) and of u (800 Hz)
    assert sc.mouth_at(syllables["i"], 0.5) == sc.REST_MOUTH  # closed between syllables


def test_the_mouth_opens_with_the_envelope_and_shows_in_the_lower_half():
    speaker = sc.random_speaker(random.Random(1))
    syllable = [(0.0, 0.4, "a", 1.0)]
    closed, open_ = sc.mouth_at(syllable, 0.01), sc.mouth_at(syllable, 0.2)
    assert open_[1] > 3 * closed[1]
    frames = [sc.face_crop(sc.render_frame(speaker, mouth, 0.0)) for mouth in (closed, open_)]
    difference = np.abs(frames[0].astype(int) - frames[1]).sum(axis=2)
    rows = np.nonzero(difference.max(axis=1) > 30)[0]
    assert len(rows) and rows.min() >= frames[0].shape[0] // 2  # only the lower half changes


def test_clips_are_reproducible_and_speakers_vary():
    speaker = sc.random_speaker(random.Random(2))
    a, b = sc.clip_media(speaker, 1.0, seed=7), sc.clip_media(speaker, 1.0, seed=7)
    assert np.array_equal(a[1], b[1]) and all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    assert len(a[0]) == 25 and len(a[1]) == 16000
    rng = random.Random(3)
    speakers = [sc.random_speaker(rng) for _ in range(5)]
    assert len({s.skin for s in speakers}) == 5 and len({round(s.pitch) for s in speakers}) == 5


def file_bytes(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_out_of_sync_sound_keeps_the_clip_s_length_and_the_correction_undoes_it():
    wav = sc.clip_media(sc.random_speaker(random.Random(4)), 1.2, seed=9)[1]
    for offset in (-3, 2):
        moved = sc.out_of_sync(wav, offset, seed=1)
        assert len(moved) == len(wav) and moved.dtype == wav.dtype
        n = abs(offset) * 640
        if offset < 0:  # late: silence, then the sound
            assert np.array_equal(moved[n:], wav[:-n]) and np.abs(moved[:n]).max() < 0.02
        else:  # early: the sound from later on, then silence
            assert np.array_equal(moved[:-n], wav[n:]) and np.abs(moved[-n:]).max() < 0.02
        usable = slice(n, None) if offset > 0 else slice(None, -n)
        assert np.array_equal(corrected_wav(moved, offset, 16000, 25)[usable], wav[usable])


def test_a_share_of_the_clips_is_out_of_sync_and_the_rest_byte_for_byte_as_without(tmp_path):
    in_sync, shifted = tmp_path / "in_sync", tmp_path / "shifted"
    sc.make_corpus(in_sync, speakers=4, clips=2, seconds=1.2, seed=6)
    sc.make_corpus(shifted, speakers=4, clips=2, seconds=1.2, seed=6, av_offset_share=0.4, av_offset_max=3)
    truth = {row["clip"]: int(row["offset"]) for row in read_rows(shifted / "av_offsets.csv")}
    moved = {clip for clip, offset in truth.items() if offset}
    assert len(truth) == 8 and len(moved) == 3  # round(0.4 * 8)
    assert all(1 <= abs(truth[clip]) <= 3 for clip in moved)
    before, after = file_bytes(in_sync), file_bytes(shifted)
    assert not (in_sync / "av_offsets.csv").exists() and after.pop("av_offsets.csv")
    assert sorted(name for name in before if before[name] != after[name]) == sorted(f"{clip}/audio.wav" for clip in moved)
    for clip in moved:  # the in-sync sound, moved by the offset: audio d frames late is -d
        a, b = (audio.load_wav(root / clip / "audio.wav", 16000) for root in (in_sync, shifted))
        n = -truth[clip] * 640
        a, b = (a[:len(a) - n], b[n:]) if n > 0 else (a[-n:], b[:len(b) + n])
        assert np.corrcoef(a, b)[0, 1] > 0.999
    assert sc.chosen_offsets(6, 8, 0.4, 3) == sc.chosen_offsets(6, 8, 0.4, 3) != sc.chosen_offsets(7, 8, 0.4, 3)


def test_raw_clips_are_out_of_sync_too(tmp_path):
    sc.make_corpus(tmp_path / "in_sync", "raw", speakers=1, clips=2, seconds=1.2, seed=2)
    sc.make_corpus(tmp_path / "shifted", "raw", speakers=1, clips=2, seconds=1.2, seed=2, av_offset_share=0.5,
                   av_offset_max=4)
    (clip, offset), = [(row["clip"], int(row["offset"])) for row in read_rows(tmp_path / "shifted" / "av_offsets.csv")
                       if row["offset"] != "0"]
    a, b = (audio.load_wav(tmp_path / root / f"{clip}.mp4", 16000) for root in ("in_sync", "shifted"))
    assert len(a) == len(b)
    lags = range(-6 * 640, 6 * 640 + 1)
    window = slice(6 * 640, len(a) - 6 * 640)
    best = max(lags, key=lambda lag: float(np.dot(a[window], b[window.start + lag:window.stop + lag])))
    assert abs(best + offset * 640) <= 2  # the AAC sound moved by the offset, to a sample or two


@pytest.mark.parametrize("flags, message", [
    (["--av_offset_share", "1.5"], "--av_offset_share must be a finite number from 0 to 1, not 1.5"),
    (["--av_offset_share", "nan"], "--av_offset_share must be a finite number from 0 to 1, not nan"),
    (["--av_offset_share", "0.4", "--av_offset_max", "0"], "--av_offset_max must be a whole number from 1 to 14, not 0"),
    (["--av_offset_share", "0.4", "--av_offset_max", "15"], "--av_offset_max must be a whole number from 1 to 14, not 15"),
])
def test_bad_offset_flags_are_one_line_before_any_work(tmp_path, capsys, flags, message):
    import synthetic_corpus

    assert cli.run(synthetic_corpus.main, ["--out", str(tmp_path / "corpus"), "--seconds", "1.2", *flags]) != 0
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "corpus").exists()


def test_conversations_take_turns_and_say_who_speaks_when(tmp_path, capsys):
    import csv

    import synthetic_corpus
    from media.containers import read_frames
    from training.synthetic_conversations import conversation_media

    assert synthetic_corpus.main(["--out", str(tmp_path), "--layout", "conversation", "--people", "3", "--clips", "1",
                                  "--seconds", "8", "--seed", "2"]) == 0
    with open(tmp_path / "conversation000.speakers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    frames = list(read_frames(tmp_path / "conversation000.mp4"))
    sound = audio.load_wav(tmp_path / "conversation000.mp4", 16000)
    assert len(rows) == len(frames) == 200 and frames[0].shape == (160, 480, 3)
    turns = [int(turn) for turn, _ in itertools.groupby(row["turn"] for row in rows) if turn]
    assert len(turns) >= 3 and all(a != b for a, b in itertools.pairwise(turns))  # turns pass to someone else
    assert all(row["speaking"] in ("", row["turn"]) for row in rows)  # a syllable sounds only in its speaker's turn
    level = [np.sqrt(np.mean(sound[k * 640:(k + 1) * 640] ** 2)) for k in range(len(rows))]
    speaking = [row["speaking"] != "" for row in rows]
    assert min(l for l, s in zip(level, speaking) if s) > 5 * max(l for l, r in zip(level, rows) if not r["turn"])
    # whoever is not speaking shows a closed mouth: their part of the frame is their face at rest
    speakers = [sc.random_speaker(random.Random(k)) for k in range(2)]
    frames, _, truth = conversation_media(speakers, 6.0, seed=3)
    for k in range(0, len(frames), 3):
        for person, speaker in enumerate(speakers):
            at_rest = sc.render_frame(speaker, sc.REST_MOUTH, k / sc.FPS)
            part = frames[k][:, person * sc.FRAME_SIZE:(person + 1) * sc.FRAME_SIZE]
            assert np.array_equal(part, at_rest) == (truth[k]["speaking"] != person), (k, person)
    assert "wrote 1 conversations of 3 people" in capsys.readouterr().out
