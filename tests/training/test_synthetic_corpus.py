"""The synthetic corpus: mouths that follow what is said, in shape as well as in opening."""

import random

import numpy as np

import training.synthetic_data as sc


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
