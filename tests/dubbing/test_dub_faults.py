"""dub.py given hostile input: a timestamp typo hours past the video, NaN or infinite audio,
flags out of range. Each is one line (or one warning) before the long work, in bounded memory."""

import tracemalloc

import av
import numpy as np
import pytest

import audio
import dub
import dubbing.dub
from dubbing.speech import Speech
from media.synthetic import face_frames, speech_like, write_media, write_video
from system.errors import UserError

RATE = 22050  # eSpeak NG's
SHORT = "1\n00:00:00,200 --> 00:00:00,900\nHello.\n"
# A typo: 01:00:01 for 00:00:01. The cue is legitimate (the video loops), and almost surely wrong.
TYPO = SHORT + "\n2\n01:00:01,000 --> 01:00:02,000\nGoodbye.\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dub_faults")
    t = np.arange(16000) / 16000
    write_video(d / "face.mp4", face_frames(25), audio=0.3 * np.sin(2 * np.pi * 440 * t))  # 1 s
    (d / "short.srt").write_text(SHORT, encoding="utf-8")
    (d / "typo.srt").write_text(TYPO, encoding="utf-8")
    return d


def dub_without_lip_sync(inputs, monkeypatch, *flags, face="face.mp4"):
    """Run dub.py's pipeline up to the lip-sync, which instead reports the speech WAV it was given
    (its length in samples and, unless ``len`` alone is wanted, the samples); also the warnings."""
    given, notes = {}, []

    def lip_sync(options):
        with av.open(options.audio) as container:
            stream = container.streams.audio[0]
            given.update(rate=stream.rate, seconds=float(stream.duration * stream.time_base))

    monkeypatch.setattr(dubbing.dub, "lip_sync", lip_sync)
    args = dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", str(inputs / face), "--outfile",
                                          str(inputs / "out" / "d.mp4"), *flags])
    dubbing.dub.dub(dubbing.dub.Speaking.from_args(args), dub.Options.from_args(args, audio=""), notes=notes.append)
    return given, notes


def traced_peak(run):
    """(what ``run()`` returns, the most memory it held at once, in bytes, as tracemalloc sees it:
    NumPy's arrays included)."""
    tracemalloc.start()
    try:
        return run(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_cue_an_hour_past_a_one_second_video_is_warned_about_and_mixed_in_bounded_memory(inputs, monkeypatch):
    def dub_of(srt):
        return dub_without_lip_sync(inputs, monkeypatch, "--subtitles", str(inputs / srt), "--original_audio", "duck")

    dub_of("short.srt")  # what is imported and kept once is not counted below
    _, short = traced_peak(lambda: dub_of("short.srt"))
    (given, notes), long = traced_peak(lambda: dub_of("typo.srt"))
    assert given["rate"] == RATE and given["seconds"] == pytest.approx(3602, abs=0.01)  # until the last cue's end
    # The whole track (an hour of float32 at 22050 Hz) is 318 MB; it was made in pieces of 4 MB.
    assert long < short + 40e6, f"{short / 1e6:.0f} MB for a second, {long / 1e6:.0f} MB for an hour"
    far = [line for line in notes if "far past" in line]
    assert far == [f"the cue at line 6 of {inputs / 'typo.srt'} ends at 1:00:02.000, far past the end of the video "
                   "(0:00:01.000, looped to fill the time): the output will be at least 1:00:02.000 long; a typo in "
                   "the timestamp?"]


def test_cues_within_the_video_are_not_warned_about(inputs, monkeypatch):
    given, notes = dub_without_lip_sync(inputs, monkeypatch, "--subtitles", str(inputs / "short.srt"))
    assert given["seconds"] == pytest.approx(0.9, abs=0.01) and not [line for line in notes if "far past" in line]


def test_the_streamed_mix_is_the_whole_track_mix(inputs, monkeypatch, tmp_path):
    """The track written piece by piece holds what it did when built whole (same cues, same
    speech, same ducking): checked against the mix computed here, in one piece."""
    srt = tmp_path / "three.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,500\nHello everybody, and welcome.\n\n"
                   "2\n00:00:00,600 --> 00:00:01,400\nToday.\n\n3\n00:00:02,000 --> 00:00:02,300\nBye.\n",
                   encoding="utf-8")
    written = {}
    monkeypatch.setattr(dubbing.dub, "speech_engine", lambda name: SteadyVoice())
    monkeypatch.setattr(dubbing.dub, "lip_sync", lambda options: written.update(track=audio.load_wav(options.audio,
                                                                                                      RATE)))
    monkeypatch.setattr(dubbing.mixing, "BLOCK", 1000)  # many pieces, most cut through a cue or a ramp
    args = dub.build_parser().parse_args(["--checkpoint_path", "g.pth", "--face", str(inputs / "face.mp4"),
                                          "--outfile", str(tmp_path / "d.mp4"), "--subtitles", str(srt),
                                          "--original_audio", "duck", "--duck_db", "9"])
    dubbing.dub.dub(dubbing.dub.Speaking.from_args(args), dub.Options.from_args(args, audio=""), notes=print)
    assert np.array_equal(written["track"], whole_track_mix(srt, inputs / "face.mp4", 9))


def whole_track_mix(srt, face, duck_db, max_speedup=1.3, ramp=0.05):
    """The mix as dub.py made it in one piece before it streamed (the reference for the test above)."""
    import librosa

    from dubbing.subtitles import read_cues

    engine, cues = SteadyVoice(), read_cues(srt)
    pieces, spans, free_from = [], [], 0.0
    for cue in cues:
        samples = engine.synthesize(cue.text).samples
        speedup = min(max(1.0, len(samples) / RATE / (cue.end - cue.start)), max_speedup)
        if speedup > 1.0:
            samples = librosa.effects.time_stretch(samples, rate=speedup)
        start = max(cue.start, free_from)
        pieces.append((round(start * RATE), samples))
        free_from = start + len(samples) / RATE
        spans.append((start, free_from))
    speech = np.zeros(max(max(o + len(s) for o, s in pieces), round(cues[-1].end * RATE)), np.float32)
    for offset, samples in pieces:
        speech[offset:offset + len(samples)] += samples
    original = audio.load_wav(face, RATE)
    original = np.pad(original[:len(speech)], (0, max(0, len(speech) - len(original))))
    amount = np.zeros(len(speech), np.float32)
    for start, end in spans:
        first = max(0, int((start - ramp) * RATE))
        last = min(len(speech), int(np.ceil((end + ramp) * RATE)) + 1)
        shape = np.interp(np.arange(first, last) / RATE, [start - ramp, start, end, end + ramp], [0, 1, 1, 0])
        amount[first:last] = np.maximum(amount[first:last], shape)
    gain = 1 - (1 - 10 ** (-duck_db / 20)) * amount
    return np.clip(original * gain + speech, -1, 1).astype(np.float32)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_soundtrack_holding_nan_or_inf_is_one_line_naming_the_video_before_any_speech(tmp_path, monkeypatch, bad):
    sound = np.full(16000, 0.1, np.float32)
    sound[100:110] = float(bad)
    face = write_media(tmp_path / "face.mkv", sound, 16000, audio_codec="pcm_f32le", video_codec="libx264",
                       video_frames=25, size=(160, 128))
    (tmp_path / "short.srt").write_text(SHORT, encoding="utf-8")
    monkeypatch.setattr(dubbing.dub, "speech_engine", lambda name: Mute())
    what = "10 NaN" if bad == "nan" else "10 infinite"
    with pytest.raises(UserError, match=f"^{face}: the audio holds {what} sample"):
        dub_without_lip_sync(tmp_path, monkeypatch, "--subtitles", str(tmp_path / "short.srt"),
                             "--original_audio", "duck", face="face.mkv")


class SteadyVoice:
    """A speech engine that says the same words the same way every time (eSpeak NG does not
    quite: its output differs by a few samples from one call to the next)."""

    name, synthesiser, digital_source_type, sample_rate = "steady", "a steady voice", "", RATE

    def check_voice(self, voice, given=None):
        pass

    def synthesize(self, text, voice="en", rate=1.0, pitch=50):
        return Speech(speech_like(0.1 * len(text), RATE, seed=len(text)), RATE)


class Mute:
    """A speech engine that must not be asked to speak."""

    name, synthesiser, digital_source_type, sample_rate = "mute", "no voice", "", RATE

    def check_voice(self, voice, given=None):
        pass

    def synthesize(self, text, voice="en", rate=1.0, pitch=50):
        pytest.fail("speech made before the check")


class BrokenVoice:
    """A speech engine that returns NaN for one sentence."""

    name, synthesiser, digital_source_type, sample_rate = "broken", "a broken voice", "", RATE

    def check_voice(self, voice, given=None):
        pass

    def synthesize(self, text, voice="en", rate=1.0, pitch=50):
        samples = np.full(RATE // 2, 0.1, np.float32)
        samples[7] = np.nan if "Goodbye" in text else 0.1
        return Speech(samples, RATE)


@pytest.mark.parametrize("source, where", [
    ("--subtitles", "the cue at line 6 of SRT"),
    ("--text", "--text"),
])
def test_speech_holding_nan_is_one_line_naming_the_cue(inputs, monkeypatch, tmp_path, source, where):
    srt = tmp_path / "two.srt"
    srt.write_text(SHORT + "\n2\n00:00:01,000 --> 00:00:02,000\nGoodbye.\n", encoding="utf-8")
    monkeypatch.setattr(dubbing.dub, "speech_engine", lambda name: BrokenVoice())
    where = where.replace("SRT", str(srt))
    with pytest.raises(UserError, match=f"^a broken voice made NaN or infinite samples for {where}"):
        dub_without_lip_sync(inputs, monkeypatch, source, str(srt) if source == "--subtitles" else "Goodbye.")


@pytest.mark.parametrize("flag, value, message", [
    ("--speech_rate", "nan", "--speech_rate nan: give a multiple of the normal rate between 0.25 and 4"),
    ("--speech_rate", "inf", "--speech_rate inf: give a multiple"),
    ("--pitch", "nan", "--pitch nan: give a value from 0 to 100"),
    ("--pitch", "101", "--pitch 101.0: give a value from 0 to 100"),
    ("--max_speedup", "nan", r"--max_speedup nan: give 1 \(never speed up\) or more"),
    ("--max_speedup", "inf", r"--max_speedup inf: give 1 \(never speed up\) or more"),
    ("--max_speedup", "0.5", r"--max_speedup 0.5: give 1 \(never speed up\) or more"),
    ("--duck_db", "nan", r"--duck_db nan: give how many dB to lower the original by \(0 or more, a finite"),
    ("--duck_db", "inf", r"--duck_db inf: give how many dB"),
    ("--duck_db", "-3", r"--duck_db -3.0: give how many dB"),
])
def test_numeric_flags_out_of_range_are_one_line_before_any_work(inputs, monkeypatch, flag, value, message):
    monkeypatch.setattr(dubbing.dub, "speech_engine", lambda name: pytest.fail("speech made before the check"))
    with pytest.raises(UserError, match=f"^{message}"):
        dub_without_lip_sync(inputs, monkeypatch, "--text", "Hello.", "--original_audio", "duck", flag, value)


def test_the_original_soundtrack_may_come_in_blocks_of_any_length(monkeypatch):
    monkeypatch.setattr(dubbing.mixing, "BLOCK", 333)
    rate, original = 1000, np.random.default_rng(0).uniform(-0.5, 0.5, 5000).astype(np.float32)
    speech = np.full(700, 0.25, np.float32)

    def mixed(blocks):
        pieces = []
        mix = dubbing.mixing.Mix(pieces.append, rate, blocks, duck_db=6)
        mix.add(0.5, speech)
        mix.add(2.0, speech)
        assert mix.finish(until=7.0) == 7000  # past the original's end: silence under no speech
        return np.concatenate(pieces)

    whole = mixed([original])
    assert np.array_equal(mixed(np.array_split(original, 37)), whole)
    assert np.array_equal(whole[:400], original[:400]) and np.all(whole[5000:] == 0)
    assert np.allclose(whole[600:1100], original[600:1100] * 10 ** (-6 / 20) + 0.25)
