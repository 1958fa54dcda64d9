"""The offline voice (eSpeak NG) makes real speech, in many languages, at the rate and pitch asked."""

import re

import librosa
import numpy as np
import pytest

from dubbing.engines import speech_engine
from system.errors import UserError

TEXT = "The quick brown fox jumps over the lazy dog near the river bank today."  # 14 words


@pytest.fixture(scope="module")
def engine():
    return speech_engine("espeak")


def median_f0(speech):
    f0 = librosa.yin(speech.samples, fmin=60, fmax=400, sr=speech.sample_rate)
    voiced = librosa.feature.rms(y=speech.samples)[0] > 0.05
    return float(np.median(f0[: len(voiced)][voiced[: len(f0)]]))


def test_english_text_becomes_speech_of_a_sensible_length(engine):
    speech = engine.synthesize(TEXT, "en")
    assert speech.sample_rate == 22050 and speech.samples.dtype == np.float32
    assert 14 / 5 <= speech.seconds <= 14 / 1.5  # 1.5 to 5 words a second
    rms = librosa.feature.rms(y=speech.samples)[0]
    assert (rms > 0.05).mean() > 0.5 and np.abs(speech.samples).max() <= 1
    assert 70 <= median_f0(speech) <= 250  # a voice, not noise or a tone


@pytest.mark.parametrize("voice, text", [("es", "Buenos días, ¿cómo estás?"), ("hi", "नमस्ते, आप कैसे हैं?"),
                                         ("ja", "こんにちは、お元気ですか"), ("de", "Guten Morgen, wie geht es dir?")])
def test_other_languages_speak_too(engine, voice, text):
    speech = engine.synthesize(text, voice)
    assert speech.seconds > 0.5 and (librosa.feature.rms(y=speech.samples)[0] > 0.05).mean() > 0.4


def test_voices_rate_and_pitch_change_the_audio(engine):
    english, spanish = engine.synthesize(TEXT, "en"), engine.synthesize(TEXT, "es")
    mel = lambda s: librosa.power_to_db(librosa.feature.melspectrogram(y=s.samples, sr=s.sample_rate)).mean(axis=1)  # noqa: E731
    assert np.abs(mel(english) - mel(spanish)).mean() > 1  # another voice, another spectrum
    assert 0.4 <= engine.synthesize(TEXT, "en", rate=2).seconds / english.seconds <= 0.65
    assert median_f0(engine.synthesize(TEXT, "en", pitch=90)) > 1.2 * median_f0(engine.synthesize(TEXT, "en", pitch=10))
    assert "en" in engine.voices() and "hi" in engine.voices() and len(engine.voices()) > 50


@pytest.mark.parametrize("call, message", [
    (lambda e: e.synthesize("hi", "xx-nowhere"), "--voice 'xx-nowhere': eSpeak NG has no such voice"),
    (lambda e: e.synthesize("hi", "en", rate=9), "--speech_rate 9"),
    (lambda e: e.synthesize("hi", "en", pitch=101), "--pitch 101"),
    (lambda e: speech_engine("cloud"), "--engine 'cloud': choose one of espeak"),
])
def test_bad_settings_are_one_line(engine, call, message):
    with pytest.raises(UserError, match=re.escape(message)):
        call(engine)
