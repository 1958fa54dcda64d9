"""Every video the project writes says that it is synthetic; frames change only with --label."""

import json

import av
import c2pa
import numpy as np
import pytest
from support.synthetic_certificates import write_signing_files
from support.synthetic_weights import save_released, seeded

import inference
from lipsync import Options
from media import containers
from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip
from system.errors import UserError
from training.synthetic_data import make_corpus

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
BOX = ["20", "90", "30", "100"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("marking")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    write_video(d / "face.mp4", face_frames(8))
    write_media(d / "speech.wav", speech_like(0.32)[None], 16000, audio_codec="pcm_s16le")
    return d


def lip_sync(inputs, out, *flags):
    return inference.main(["--checkpoint_path", str(inputs / "gen.pth"), "--face", str(inputs / "face.mp4"),
                           "--audio", str(inputs / "speech.wav"), "--outfile", str(out), "--box", *BOX, "--crf", "0",
                           "--quiet", "--device", "cpu", *flags])


def metadata(path):
    with av.open(str(path)) as container:
        return dict(container.metadata)


@pytest.fixture(scope="module")
def marked_and_unmarked(inputs, tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    assert lip_sync(inputs, d / "marked.mp4") == 0
    assert lip_sync(inputs, d / "unmarked.mp4", "--unmarked") == 0
    return d / "marked.mp4", d / "unmarked.mp4"


def test_a_lip_synced_video_says_what_was_generated_and_by_what(marked_and_unmarked):
    tags = metadata(marked_and_unmarked[0])
    assert tags["digital_source_type"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert tags["synthetic_content"] == "lip movements" and tags["checkpoint"] == "gen.pth"
    assert "inference.py" in tags["software"] and tags["comment"].startswith("Synthetic media: the lip movements")
    assert "speech_digital_source_type" not in tags


def test_unmarked_leaves_the_metadata_out_says_so_and_no_frame_differs(inputs, marked_and_unmarked, tmp_path, capsys):
    marked, unmarked = marked_and_unmarked
    assert not {"digital_source_type", "synthetic_content", "checkpoint", "software"} & set(metadata(unmarked))
    assert lip_sync(inputs, tmp_path / "again.mp4", "--unmarked") == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == [(f"warning: --unmarked: {tmp_path / 'again.mp4'} carries no synthetic-media metadata; "
                        "if you publish it, say that it is synthetic")]
    frames = [list(containers.read_frames(path)) for path in (marked, unmarked)]
    assert len(frames[0]) == len(frames[1]) == 5  # 0.32 s of speech: five mel chunks
    assert all(np.array_equal(a, b) for a, b in zip(*frames))


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_a_label_is_drawn_in_its_corner_at_its_size_and_nowhere_else(inputs, marked_and_unmarked, tmp_path, corner):
    assert lip_sync(inputs, tmp_path / "label.mp4", "--label", "AI-generated", "--label_corner", corner,
                    "--label_size", "0.1") == 0
    for labelled, plain in zip(containers.read_frames(tmp_path / "label.mp4"), containers.read_frames(marked_and_unmarked[0]),
                               strict=True):
        changed = np.abs(labelled.astype(int) - plain).max(axis=2) > 8
        rows, cols = np.nonzero(changed)
        height, width = changed.shape  # 128 x 160
        top, left = corner.startswith("top"), corner.endswith("left")
        assert (rows.max() < height / 2) if top else (rows.min() >= height / 2)
        assert (cols.max() < width * 0.9) if left else (cols.min() >= width * 0.1)
        assert 0.1 * height <= rows.max() - rows.min() + 1 <= 0.3 * height  # capitals, descenders and outline
        assert (labelled[changed].min(axis=1) > 200).sum() > 20  # white letters


@pytest.mark.parametrize("flags, message", [
    ({"label": "généré"}, "give printable ASCII text"),
    ({"label": "AI", "label_size": 0}, "--label_size 0: give the text height as a fraction"),
    ({"label": "AI", "label_corner": "middle"}, "--label_corner must be one of bottom-right"),
])
def test_a_bad_label_is_one_line_before_any_work(flags, message):
    with pytest.raises(UserError, match=message):
        Options("g.pth", "f.mp4", "a.wav", **flags).check()


def test_the_synthetic_corpus_says_it_was_drawn_by_a_program(tmp_path):
    make_corpus(tmp_path / "corpus", "raw", speakers=1, clips=1, seconds=0.4, seed=0)
    clip = next((tmp_path / "corpus").rglob("*.mp4"))
    tags = metadata(clip)
    assert tags["digital_source_type"] == IPTC + "algorithmicMedia" and "synthetic_corpus.py" in tags["software"]


def test_c2pa_content_credentials_are_embedded_and_validate(inputs, marked_and_unmarked, tmp_path):
    chain, key = write_signing_files(tmp_path)
    signed = tmp_path / "signed.mp4"
    assert lip_sync(inputs, signed, "--c2pa_cert", str(chain), "--c2pa_key", str(key)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.pem", "key.pem", "signed.mp4"]
    with open(signed, "rb") as stream:
        reader = c2pa.Reader("video/mp4", stream)
        assert reader.get_validation_state() == "Valid"  # signature and hashes hold; the test root is not trusted
        manifest = json.loads(reader.json())
    actions = [a for m in manifest["manifests"].values() for assertion in m["assertions"]
               if assertion["label"].startswith("c2pa.actions") for a in assertion["data"]["actions"]]
    assert actions[0]["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert metadata(signed)["digital_source_type"] == metadata(marked_and_unmarked[0])["digital_source_type"]
    assert all(np.array_equal(a, b) for a, b in zip(containers.read_frames(signed), containers.read_frames(marked_and_unmarked[0]),
                                                       strict=True))
    # A changed frame breaks the seal: the reader says so.
    data = bytearray(signed.read_bytes())
    at = data.index(b"mdat") + 200
    data[at] ^= 0xFF
    (tmp_path / "tampered.mp4").write_bytes(bytes(data))
    with open(tmp_path / "tampered.mp4", "rb") as stream:
        assert c2pa.Reader("video/mp4", stream).get_validation_state() == "Invalid"


def test_bad_signing_files_are_one_line_before_any_work(inputs, tmp_path):
    chain, key = write_signing_files(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "old").mkdir()
    other_chain, _ = write_signing_files(tmp_path / "other")
    expired, expired_key = write_signing_files(tmp_path / "old", valid_days=(-30, -1))
    cases = [(["--c2pa_cert", str(chain)], "--c2pa_cert and --c2pa_key go together"),
             (["--c2pa_cert", str(chain), "--c2pa_key", str(tmp_path / "none.pem")], "--c2pa_key: file not found"),
             (["--c2pa_cert", str(other_chain), "--c2pa_key", str(key)], "is not the key of the first certificate"),
             (["--c2pa_cert", str(key), "--c2pa_key", str(key)], "not a PEM certificate chain"),
             (["--c2pa_cert", str(expired), "--c2pa_key", str(expired_key)], "the certificate is not valid now"),
             (["--c2pa_cert", str(chain), "--c2pa_key", str(key), "--unmarked"], "contradict each other")]
    for flags, message in cases:
        with pytest.raises(UserError, match=message):
            lip_sync(inputs, tmp_path / "out.mp4", *flags)
        assert not (tmp_path / "out.mp4").exists()
