"""The face size as a dimension of the networks: 96 as released, 192 and 384 built from it, recorded
in every checkpoint and read back from it."""

import shutil

import numpy as np
import pytest
import torch
from support.synthetic_weights import save_released, seeded

import export
from hparams import check_values, hparams
from lipsync.onnx_generator import OnnxGenerator
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import (
    CheckpointError,
    FaceSizeMismatch,
    face_size_of,
    load_network,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from models.fusion import fuse_for_inference
from system.errors import UserError

NETWORKS = [Wav2Lip, SyncNet_color, Wav2Lip_disc_qual]


def keys_and_shapes(model, prefix=""):
    return {key: tuple(value.shape) for key, value in model.state_dict().items() if key.startswith(prefix)}


@pytest.mark.parametrize("size", [192, 384])
def test_larger_networks_make_and_judge_faces_of_their_size(size):
    generator, expert, disc = seeded(Wav2Lip(size), 1), seeded(SyncNet_color(size), 2), seeded(Wav2Lip_disc_qual(size), 3)
    mel = torch.randn(2, 1, 80, 16)
    with torch.no_grad():
        faces = generator(mel, torch.rand(2, 6, size, size))
        audio, face = expert(mel, torch.rand(2, 15, size // 2, size))
        realness = disc(torch.rand(2, 3, 5, size, size))
    assert faces.shape == (2, 3, size, size) and 0 <= faces.min() and faces.max() <= 1
    assert audio.shape == face.shape == (2, 512)
    torch.testing.assert_close(face.norm(dim=1), torch.ones(2))
    assert realness.shape == (10, 1)
    with pytest.raises(RuntimeError):  # a 96-pixel face does not fit a 192-pixel network
        generator(mel, torch.rand(2, 6, 96, 96))


@pytest.mark.parametrize("size", [192, 384])
def test_larger_networks_keep_wav2lip_s_structure(size):
    levels = {192: 1, 384: 2}[size]
    released, larger = Wav2Lip().eval(), Wav2Lip(size).eval()
    # The audio encoder is the released one, key for key and shape for shape.
    assert keys_and_shapes(larger, "audio_encoder.") == keys_and_shapes(released, "audio_encoder.")
    assert keys_and_shapes(SyncNet_color(size), "audio_encoder.") == keys_and_shapes(SyncNet_color(), "audio_encoder.")
    # An encoder level and a decoder level (with its skip) per doubling; the rest as released.
    assert len(larger.face_encoder_blocks) == len(released.face_encoder_blocks) + levels
    assert len(larger.face_decoder_blocks) == len(released.face_decoder_blocks) + levels
    for k in range(1, len(released.face_encoder_blocks)):  # from the first stride-2 level down, the released blocks
        assert keys_and_shapes(larger.face_encoder_blocks[k + levels]) == keys_and_shapes(released.face_encoder_blocks[k])
    for k in range(len(released.face_decoder_blocks)):
        assert keys_and_shapes(larger.face_decoder_blocks[k]) == keys_and_shapes(released.face_decoder_blocks[k])
    # Every skip is used: the encoder's activations, popped in reverse, meet the decoder's at each size.
    sizes = []
    x = torch.rand(1, 6, size, size)
    with torch.no_grad():
        for block in larger.face_encoder_blocks:
            x = block(x)
            sizes.append(x.shape[-1])
    assert sizes == [size] + [size >> k for k in range(1, levels + 1)] + [48, 24, 12, 6, 3, 1]
    assert len(SyncNet_color(size).face_encoder) == len(SyncNet_color().face_encoder) + 2 * levels
    assert len(Wav2Lip_disc_qual(size).face_encoder_blocks) == len(Wav2Lip_disc_qual().face_encoder_blocks) + levels


def test_a_face_size_wav2lip_was_not_built_for_is_refused():
    for network in NETWORKS:
        with pytest.raises(ValueError, match="face_size must be one of 96, 192, 384, not 288"):
            network(288)
    with pytest.raises(UserError, match=r"--hparams: face_size must be 96, 192 or 384 \(pixels a side\), not 288"):
        check_values({**hparams.values(), "face_size": 288})


def test_the_larger_generator_s_two_forms_agree_and_folding_batchnorm_changes_nothing():
    model = seeded(Wav2Lip(192), 4).double()
    mel, faces = torch.randn(2, 5, 1, 80, 16, dtype=torch.float64), torch.rand(2, 6, 5, 192, 192, dtype=torch.float64)
    with torch.no_grad():
        sequence = model(mel, faces)
        torch.testing.assert_close(sequence[:, :, 3], model(mel[:, 3], faces[:, :, 3]), atol=1e-9, rtol=0)
        torch.testing.assert_close(fuse_for_inference(model)(mel[:, 0], faces[:, :, 0]), sequence[:, :, 0],
                                   atol=1e-9, rtol=0)


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("size", [96, 192])
def test_every_checkpoint_records_its_face_size_and_builds_it_back(tmp_path, network, size):
    original = seeded(network(size), 5)
    path = save_checkpoint(tmp_path / "net.pth", torch.nn.DataParallel(original), global_step=3)
    assert torch.load(path, weights_only=True)["face_size"] == size
    model, checkpoint = load_network(network, path)
    assert model.face_size == size and checkpoint["global_step"] == 3
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    meta, _ = load_network(network, path, meta=True)  # inference's way: no random initialisation first
    assert all(torch.equal(meta.state_dict()[key], value) for key, value in original.state_dict().items())


@pytest.mark.parametrize("network", NETWORKS)
def test_the_released_files_record_nothing_and_are_96(tmp_path, network):
    path = save_released(seeded(network(), 6), tmp_path / "released.pth")
    assert "face_size" not in torch.load(path, weights_only=True)
    assert face_size_of(read_checkpoint(path), path) == 96
    assert load_network(network, path)[0].face_size == 96
    # Without the record, the layers alone say a larger network's size.
    larger = save_released(seeded(network(192), 6), tmp_path / "larger.pth")
    assert face_size_of(read_checkpoint(larger), larger) == 192


@pytest.mark.parametrize("network, name", [(Wav2Lip, "the Wav2Lip generator"), (SyncNet_color, "the expert lip-sync"),
                                           (Wav2Lip_disc_qual, "the visual-quality discriminator")])
def test_a_file_of_another_face_size_is_one_line(tmp_path, network, name):
    path = save_checkpoint(tmp_path / "large.pth", seeded(network(192), 7))
    with pytest.raises(FaceSizeMismatch, match=rf"large.pth holds {name}.* for 192-pixel faces \(face_size 192\), "
                                               "but one for 96-pixel faces is needed here$"):
        load_weights(network(), path)
    small = save_released(seeded(network(), 7), tmp_path / "small.pth")
    with pytest.raises(FaceSizeMismatch, match="for 96-pixel faces .*, but one for 384-pixel faces is needed here"):
        load_weights(network(384), small)


def test_a_record_its_layers_contradict_is_refused(tmp_path):
    state = {key: value for key, value in seeded(Wav2Lip(), 8).state_dict().items()}
    torch.save({"state_dict": state, "face_size": 192}, tmp_path / "liar.pth")
    with pytest.raises(CheckpointError, match="liar.pth records face_size 192, but its layers are those of a "
                                              "96-pixel network"):
        load_network(Wav2Lip, tmp_path / "liar.pth")
    for odd in (100, 192.0, True, "192"):
        torch.save({"state_dict": state, "face_size": odd}, tmp_path / "odd.pth")
        with pytest.raises(CheckpointError, match=f"odd.pth records face_size {odd!r}, not one of 96, 192, 384"):
            load_network(Wav2Lip, tmp_path / "odd.pth")


def test_the_larger_networks_export_to_onnx_at_their_size(tmp_path):
    generator, expert = seeded(Wav2Lip(192), 0, gain=0.8), seeded(SyncNet_color(192), 1, gain=0.8)
    save_checkpoint(tmp_path / "wav2lip192.pth", generator)
    save_checkpoint(tmp_path / "expert192.pth", expert)
    assert export.main([str(tmp_path / "wav2lip192.pth"), str(tmp_path / "expert192.pth")]) == 0
    onnx = OnnxGenerator(str(tmp_path / "wav2lip192.onnx"), "cpu", 4)
    assert onnx.face_size == 192
    rng = np.random.default_rng(0)
    faces, mels = rng.integers(0, 256, (3, 192, 192, 3), dtype=np.uint8), rng.standard_normal((3, 80, 16), np.float32)
    from lipsync.generator import generate

    expected = generate(fuse_for_inference(generator), faces, mels, torch.device("cpu"), "fp32")
    got = onnx.generate(faces, mels)
    assert got.shape == (3, 192, 192, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1  # x 255 then truncated: a rounding step apart at most


def test_an_onnx_left_from_another_checkpoint_is_one_line(tmp_path):
    """wav2lip.onnx beside wav2lip.pth is the export of that very file, or --backend onnxruntime
    says so; a copy of the file it was exported from is that file."""
    save_checkpoint(tmp_path / "small.pth", seeded(Wav2Lip(), 0, gain=0.8))
    save_checkpoint(tmp_path / "large.pth", seeded(Wav2Lip(192), 0, gain=0.8))
    assert export.main([str(tmp_path / "small.pth"), str(tmp_path / "large.pth")]) == 0
    assert OnnxGenerator(str(tmp_path / "large.onnx"), "cpu", 4, str(tmp_path / "large.pth")).face_size == 192
    shutil.copy(tmp_path / "small.onnx", tmp_path / "large.onnx")  # a stale export of the 96-pixel network
    with pytest.raises(UserError, match=r"large.onnx is the export of another checkpoint \(a network for 96-pixel "
                                        r"faces\), not of .*large.pth beside it: export it again: python export.py "):
        OnnxGenerator(str(tmp_path / "large.onnx"), "cpu", 4, str(tmp_path / "large.pth"))
    shutil.copy(tmp_path / "small.pth", tmp_path / "copy.pth")  # new times, the same bytes
    shutil.copy(tmp_path / "small.onnx", tmp_path / "copy.onnx")
    assert OnnxGenerator(str(tmp_path / "copy.onnx"), "cpu", 4, str(tmp_path / "copy.pth")).face_size == 96
    save_checkpoint(tmp_path / "copy.pth", seeded(Wav2Lip(), 1, gain=0.8))  # retrained since the export
    with pytest.raises(UserError, match="copy.onnx is the export of another checkpoint"):
        OnnxGenerator(str(tmp_path / "copy.onnx"), "cpu", 4, str(tmp_path / "copy.pth"))


def test_the_384_networks_are_recorded_loaded_and_exported(tmp_path):
    save_checkpoint(tmp_path / "large.pth", seeded(Wav2Lip(384), 0, gain=0.8))
    assert load_network(Wav2Lip, tmp_path / "large.pth")[0].face_size == 384
    assert export.main([str(tmp_path / "large.pth")]) == 0
    assert OnnxGenerator(str(tmp_path / "large.onnx"), "cpu", 4, str(tmp_path / "large.pth")).face_size == 384
