"""One voice per face: several --audio, each driving the face of its --pick_face X,Y, in one pass."""

import json
from fractions import Fraction

import numpy as np
import pytest
from inference_assets import FrameList, assert_close, assets, chunk_count, cli, decoded, detector  # noqa: F401 - fixtures
from test_face_choice import LARGE, SMALL, two_faces

import audio
from lipsync import Options, lip_sync
from lipsync.audio_chunks import Speech
from lipsync.voices import mix_voices
from media.containers import stream_ends
from media.synthetic import speech_like, write_media, write_video

SMALL_POINT, LARGE_POINT = "40,50", "150,40"  # a pixel of each face


@pytest.fixture(scope="module")
def voices(assets):
    """Voice A (0.6 s), the same padded with silence to 1.0 s, and voice B (1.0 s, another sound)."""
    a = speech_like(0.6)
    write_media(assets / "a_padded.wav", np.pad(a, (0, 16000 - len(a)))[None], 16000, audio_codec="pcm_s16le")
    b = np.ascontiguousarray(speech_like(1.0, seed=5)[::-1])
    write_media(assets / "b.wav", b[None], 16000, audio_codec="pcm_s16le")
    write_video(assets / "two_faces.mp4", two_faces(15))
    return assets / "speech0.6.wav", assets / "a_padded.wav", assets / "b.wav"


def run(assets, voices, checkpoint="audio_only.pth", **options):
    """The frames of a run into a list: ``voices`` [(audio, --pick_face)], one or several."""
    audios, picks = [str(path) for path, _ in voices], [pick for _, pick in voices]
    several = {"audios": audios, "pick_faces": picks} if len(voices) > 1 else {"pick_face": picks[0]}
    sink = FrameList()
    summary = lip_sync(Options(str(assets / checkpoint), str(assets / "two_faces.mp4"), audios[0], progress=False,
                               **several, **options), sink=sink)
    return sink, summary


def region(frame, box):
    top, bottom, left, right = box
    return frame[top:bottom, left:right]


@pytest.mark.parametrize("boxes", [(SMALL, LARGE), ()], ids=["boxes given", "faces detected"])
def test_each_voice_drives_its_own_face_and_nothing_else_changes(assets, voices, detector, boxes):
    a, a_padded, b = voices
    got, summary = run(assets, [(a, SMALL_POINT), (b, LARGE_POINT)], boxes=boxes)
    alone_a, _ = run(assets, [(a_padded, SMALL_POINT)], boxes=boxes)  # A, then silence while B goes on
    alone_b, _ = run(assets, [(b, LARGE_POINT)], boxes=boxes)
    b_on_small, _ = run(assets, [(b, SMALL_POINT)], boxes=boxes)
    assert len(got) == len(alone_a) == len(alone_b) == chunk_count(1.0)  # the longest voice sets the length
    frames = decoded(assets / "two_faces.mp4")
    for i, frame in enumerate(got):
        assert_close(region(frame, SMALL), region(alone_a[i], SMALL))
        assert_close(region(frame, LARGE), region(alone_b[i], LARGE))
        assert np.abs(region(frame, SMALL).astype(int) - region(b_on_small[i], SMALL)).max() > 5  # not B's mouth
        untouched = np.ones(frame.shape[:2], bool)
        for top, bottom, left, right in (SMALL, LARGE):
            untouched[top - 3:bottom + 13, left - 3:right + 3] = False  # the boxes, with the detector's pads
        assert np.array_equal(frame[untouched], frames[i % 15][untouched])
    assert summary.passed_through == 0
    assert summary.faces_detected == (0 if boxes else 15)  # frames of the first pass with a face detected


def test_a_shorter_voice_is_its_file_padded_with_silence(voices):
    a, a_padded, _ = voices
    padded, speech = Speech(str(a_padded)), Speech(str(a))
    speech.pad_to(padded.samples)
    starts = padded.chunk_starts(25.0)
    assert speech.mel_frames == padded.mel_frames and speech.chunk_starts(25.0) == starts
    for got, expected in zip(speech.chunks(starts), padded.chunks(starts), strict=True):
        assert np.array_equal(got, expected)


def test_the_voices_are_mixed_at_the_highest_of_their_rates(tmp_path):
    low = write_media(tmp_path / "low.wav", speech_like(0.5)[None] * 0.9, 16000, audio_codec="pcm_f32le") or \
        tmp_path / "low.wav"
    high_samples = np.ascontiguousarray(speech_like(1.0, rate=44100, seed=3)[::-1]) * 0.9
    write_media(tmp_path / "high.wav", np.stack([high_samples, -high_samples * 0.5]), 44100, audio_codec="pcm_f32le")
    assert mix_voices([low, tmp_path / "high.wav"], tmp_path / "mix.wav") == 44100
    expected = audio.load_wav(tmp_path / "high.wav", 44100)
    first = audio.load_wav(low, 44100)
    expected[:len(first)] += first
    np.testing.assert_allclose(audio.load_wav(tmp_path / "mix.wav", 44100), np.clip(expected, -1, 1), atol=1e-6)


def test_the_output_s_sound_is_the_voices_mixed_and_no_scratch_file_stays(assets, voices, capsys, tmp_path):
    a, _, b = voices
    out = tmp_path / "out" / "dialogue.mp4"
    code, captured = cli(["--checkpoint_path", assets / "audio_only.pth", "--face", assets / "two_faces.mp4",
                          "--audio", a, "--pick_face", SMALL_POINT, "--audio", b, "--pick_face", LARGE_POINT,
                          "--box", *SMALL, "--box", *LARGE, "--outfile", out], capsys)
    assert code == 0, captured.err
    assert f"Wrote {out}: {chunk_count(1.0)} frames in " in captured.out and "; fixed --box; face cache" in captured.out
    assert sorted(path.name for path in out.parent.iterdir()) == ["dialogue.mp4"]
    assert len(decoded(out)) == chunk_count(1.0)
    heard = audio.load_wav(out, 16000)
    mixed = audio.load_wav(b, 16000)
    mixed[:9600] += audio.load_wav(a, 16000)
    assert stream_ends(out) == {"audio": Fraction(chunk_count(1.0), 25), "video": Fraction(chunk_count(1.0), 25)}
    n = min(len(heard), len(mixed))
    assert np.corrcoef(heard[:n], mixed[:n])[0, 1] > 0.95  # both voices, AAC's loss aside
    assert np.corrcoef(heard[:n], audio.load_wav(b, 16000)[:n])[0, 1] < 0.9  # not B alone


def test_the_expert_scores_each_voice_with_its_face(assets, voices, capsys, tmp_path):
    a, _, b = voices
    out = tmp_path / "scored.mp4"
    code, captured = cli(["--checkpoint_path", assets / "audio_only.pth", "--face", assets / "two_faces.mp4",
                          "--audio", a, "--pick_face", SMALL_POINT, "--audio", b, "--pick_face", LARGE_POINT,
                          "--box", *SMALL, "--box", *LARGE, "--outfile", out,
                          "--syncnet_checkpoint_path", assets / "sync.pth"], capsys)
    assert code == 0, captured.err
    scores = json.loads((tmp_path / "scored.mp4.sync.json").read_text())
    windows = chunk_count(1.0) - 4
    assert [(voice["voice"], voice["pick_face"], len(voice["chunks"]), len(voice["result"]))
            for voice in scores["voices"]] == [(str(a), SMALL_POINT, windows, windows), (str(b), LARGE_POINT, windows,
                                                                                        windows)]
    assert scores["voices"][0]["result"] != scores["voices"][1]["result"]
    assert f"Voice/face sync of the result (face at {SMALL_POINT}, {a}): DescribeResult(nobs={windows}," in captured.out
    assert f"Voice/face sync of the result (face at {LARGE_POINT}, {b}): DescribeResult(nobs={windows}," in captured.out


@pytest.mark.parametrize("flags, said", [
    (["--audio", "B", "--pick_face", SMALL_POINT],
     "error: 2 --audio but 1 --pick_face: each voice drives the face of the --pick_face X,Y given in the same place "
     "(--pick_face X,Y once per --audio)"),
    (["--audio", "B"], "error: 2 --audio but no --pick_face: each voice drives the face of the --pick_face X,Y given "
                       "in the same place (--pick_face X,Y once per --audio)"),
    (["--pick_face", SMALL_POINT, "--pick_face", LARGE_POINT],
     "error: --pick_face is given 2 times for one --audio: one face per voice (give an --audio for each --pick_face "
     "X,Y, in the same order)"),
    (["--audio", "B", "--pick_face", "largest", "--pick_face", LARGE_POINT],
     "error: --pick_face largest with several --audio: name each voice's face by a pixel of it, --pick_face X,Y"),
    (["--audio", "B", "--pick_face", SMALL_POINT, "--pick_face", "41,51", "--box", *SMALL, "--box", *LARGE],
     "error: --pick_face 40,50 and --pick_face 41,51 name the same --box 30 80 20 60: each voice needs a face of its "
     "own"),
    (["--audio", "B", "--pick_face", SMALL_POINT, "--pick_face", "239,5"],
     None),  # a point no face holds: after detection, naming the faces found
])
def test_voices_and_faces_that_do_not_pair_up_are_one_line(assets, voices, detector, capsys, tmp_path, flags, said):
    flags = [str(voices[2]) if flag == "B" else flag for flag in flags]
    code, captured = cli(["--checkpoint_path", assets / "audio_only.pth", "--face", assets / "two_faces.mp4",
                          "--audio", voices[0], "--outfile", tmp_path / "x.mp4", *flags], capsys)
    if said is None:
        said = "error: --pick_face 239,5: no face found in the video"
        assert code == 1 and captured.err.startswith(said) and captured.err.count("\n") == 1
    else:
        assert (code, captured.err.strip()) == (1, said)
        assert detector.calls == []
    assert not (tmp_path / "x.mp4").exists()


def test_a_batch_holds_at_most_its_size_in_faces(assets, voices, monkeypatch):
    import lipsync.generator

    sizes = []
    generate = lipsync.generator.TorchGenerator.generate
    monkeypatch.setattr(lipsync.generator.TorchGenerator, "generate",
                        lambda self, faces, mels: sizes.append(len(faces)) or generate(self, faces, mels))
    a, _, b = voices
    got, _ = run(assets, [(a, SMALL_POINT), (b, LARGE_POINT)], boxes=(SMALL, LARGE), wav2lip_batch_size=3)
    assert sum(sizes) == 2 * len(got) and max(sizes) == 2  # a frame's two faces, never a third beside them
    sizes.clear()
    run(assets, [(a, SMALL_POINT), (b, LARGE_POINT)], boxes=(SMALL, LARGE), wav2lip_batch_size=4)
    assert max(sizes) == 4 and sum(sizes) == 2 * len(got)


def test_two_points_on_one_detected_face_are_one_line(assets, voices, detector, capsys, tmp_path):
    code, captured = cli(["--checkpoint_path", assets / "audio_only.pth", "--face", assets / "two_faces.mp4",
                          "--audio", voices[0], "--pick_face", SMALL_POINT, "--audio", voices[2], "--pick_face", "41,51",
                          "--outfile", tmp_path / "x.mp4"], capsys)
    assert code == 1 and captured.err.startswith("error: --pick_face 40,50 and --pick_face 41,51 both name face 2 "
                                                 "(frames 0-14, first box 30 80 20 60 top bottom left right) in the "
                                                 "video ")
    assert captured.err.strip().endswith(": each voice needs a face of its own")
    assert not (tmp_path / "x.mp4").exists()
