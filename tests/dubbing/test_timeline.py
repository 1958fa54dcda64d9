"""Cue placement against hand-worked timings."""

import numpy as np
import pytest

from dubbing.mixing import Mix
from dubbing.speech import Speech
from dubbing.subtitles import Cue
from dubbing.timeline import far_past_the_video, place_speech

RATE = 8000  # samples a second


def tone(seconds, level):
    return Speech(np.full(round(seconds * RATE), level, np.float32), RATE)


def placed_track(cues, speeches, max_speedup=1.3):
    """(the speech track, its sample rate, [Placement]) as dub.py places and mixes it, muted."""
    pieces = []
    mix = Mix(pieces.append, speeches[0].sample_rate)
    placed = place_speech(cues, speeches, mix.add, max_speedup)
    mix.finish(until=cues[-1].end)
    return np.concatenate(pieces), speeches[0].sample_rate, placed


def test_speech_that_fits_starts_at_its_cue_and_nothing_is_reported():
    cues = [Cue(1.0, 3.0, "a", 2), Cue(4.0, 5.0, "b", 6)]
    track, rate, placed = placed_track(cues, [tone(1.5, 0.5), tone(0.8, 0.25)])
    assert rate == RATE and len(track) == 5 * RATE  # until the last cue's end
    assert [(p.start, p.seconds, p.speedup, p.delay) for p in placed] == [(1.0, 1.5, 1.0, 0.0), (4.0, 0.8, 1.0, 0.0)]
    at = lambda seconds: round(seconds * RATE)  # noqa: E731
    assert np.all(track[:at(1)] == 0) and np.all(track[at(1):at(2.5)] == 0.5) and np.all(track[at(2.5):at(4)] == 0)
    assert np.all(track[at(4):at(4.8)] == 0.25) and not any(p.notes(1.3) for p in placed)


def test_speech_that_ends_where_the_next_cue_starts_does_not_delay_it():
    # 1.1 + 6615 / 22050 is 1.4000000000000001 in floating point: no "delayed by 0.000 s"
    cues = [Cue(1.1, 1.4, "a", 2), Cue(1.4, 1.8, "b", 6)]
    speeches = [Speech(np.full(6615, 0.5, np.float32), 22050), Speech(np.full(6615, 0.25, np.float32), 22050)]
    _, _, placed = placed_track(cues, speeches)
    assert [(p.start, p.delay) for p in placed] == [(1.1, 0.0), (1.4, 0.0)] and not any(p.notes(1.3) for p in placed)


def test_long_speech_is_sped_up_to_its_cue_then_runs_over_and_delays_the_next():
    # Cue 1 lasts 1 s: 1.2 s of speech fits at 1.2x. Cue 2 lasts 1 s: 2 s of speech is
    # played at the 1.3x limit, 2 / 1.3 = 1.538 s, so it runs 0.538 s past its end (3.0 s)
    # and cue 3, due at 3.2 s, starts at 3.538 s instead: 0.338 s late.
    cues = [Cue(0.0, 1.0, "a", 2), Cue(2.0, 3.0, "b", 6), Cue(3.2, 4.0, "c", 10)]
    track, _, placed = placed_track(cues, [tone(1.2, 0.1), tone(2.0, 0.2), tone(0.5, 0.4)], max_speedup=1.3)
    first, second, third = placed
    assert first.speedup == pytest.approx(1.2) and first.seconds == pytest.approx(1.0, abs=0.02)
    assert second.speedup == 1.3 and second.seconds == pytest.approx(2.0 / 1.3, abs=0.02)
    assert second.overrun == pytest.approx(0.538, abs=0.02)
    assert third.start == pytest.approx(3.538, abs=0.02) and third.delay == pytest.approx(0.338, abs=0.02)
    assert second.notes(1.3) == [("cue at line 6 (2.000-3.000 s): the speech is too long even at 1.3x; it runs "
                                  f"{second.overrun:.3f} s past the cue's end")]
    assert third.notes(1.3) == [(f"cue at line 10 (3.200-4.000 s): delayed by {third.delay:.3f} s, the speech "
                                 "before it ran over")]
    # Nothing overlaps: the track never holds two cues' speech at once (0.2 + 0.4 would show).
    assert np.abs(track).max() < 0.45 and np.abs(track[round(3.6 * RATE):round(4.0 * RATE)] - 0.4).max() < 1e-6


def test_speeding_up_keeps_the_pitch():
    rate = 16000
    t = np.arange(2 * rate) / rate
    voice = Speech((0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    track, _, (placed,) = placed_track([Cue(0.0, 1.6, "a", 2)], [voice], max_speedup=1.3)
    assert placed.speedup == pytest.approx(1.25)
    sped = track[: round(placed.seconds * rate)]
    spectrum = np.abs(np.fft.rfft(sped[rate // 10: -rate // 10] * np.hanning(len(sped) - rate // 5)))
    assert np.fft.rfftfreq(len(sped) - rate // 5, 1 / rate)[spectrum.argmax()] == pytest.approx(220, abs=3)


def test_cues_far_past_the_video_are_warned_about_naming_the_first_that_ends_there():
    cues = [Cue(1.0, 2.0, "a", 2), Cue(4000.0, 4001.5, "b", 6), Cue(4002.0, 4003.0, "c", 10)]
    assert far_past_the_video(cues, 3.0, "t.srt") == (
        "the cue at line 6 of t.srt ends at 1:06:41.500, far past the end of the video (0:00:03.000, looped to fill "
        "the time): the output will be at least 1:06:43.000 long; a typo in the timestamp?")
    assert far_past_the_video(cues, 0.0, "t.srt") == (  # a still
        "the cue at line 6 of t.srt ends at 1:06:41.500: the output will be at least 1:06:43.000 long; a typo in the "
        "timestamp?")
    assert far_past_the_video(cues, 401.0, "t.srt") is None  # under ten times the video
    assert far_past_the_video(cues[:1], 0.05, "t.srt") is None  # under an hour
