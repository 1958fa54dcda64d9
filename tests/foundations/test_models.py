import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from support.synthetic_weights import save_released, seeded

from evaluation.metrics.syncnet import S
from face_detection import S3FD
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import load_weights
from training.losses import realness_loss

NETWORKS = [(Wav2Lip, "wav2lip"), (SyncNet_color, "syncnet_color"), (Wav2Lip_disc_qual, "disc_qual"), (S3FD, "s3fd"),
            (S, "syncnet_lse")]

# SHA-256 of the JSON list of [key, shape, dtype] of each released file's state dict, in order:
# the released layout, checked without shipping the lists.
LAYOUT_SHA256 = {
    "wav2lip": "93c6f7fffbfaf22abb27bc8acba65e3c5ce46c0dadefaea6df5b3f01307c362b",
    "syncnet_color": "8d9bc40dde381f6e56de8b25bc8c092065ba253d342c98a5d1345d075df3f82d",
    "disc_qual": "45e1974d048f0593f4eef830827d798cabd57ec35125f72d4699223f35080176",
    "s3fd": "fc9883b0eb45cd2e4ab353faf241f59afaa242386583dfe94c4e21e5fe04640b",
    "syncnet_lse": "af258a8822e3edcff2d1f33d2863fcbdebb54a6bc4ee8b14498fefe91f70b1cf",
}


def layout(model):
    return [[key, list(value.shape), str(value.dtype)] for key, value in model.state_dict().items()]


@pytest.mark.parametrize("network, key_file", NETWORKS)
def test_state_dict_layout_is_the_released_one(network, key_file):
    actual = layout(network())
    assert hashlib.sha256(json.dumps(actual).encode()).hexdigest() == LAYOUT_SHA256[key_file]


def test_parameter_counts():
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert round(count(Wav2Lip()) / 1e6, 1) == 36.3
    assert len(Wav2Lip().state_dict()) == 352 and len(SyncNet_color().state_dict()) == 217
    assert len(Wav2Lip_disc_qual().state_dict()) == 28 and len(S3FD().state_dict()) == 65


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("module_prefix", [True, False])
@pytest.mark.parametrize("wrapped", [True, False])
def test_released_format_round_trip(tmp_path, legacy, module_prefix, wrapped):
    original = seeded(Wav2Lip(), seed=1)
    path = save_released(original, tmp_path / "wav2lip.pth", module_prefix, legacy, wrapped, global_step=7)
    loaded = Wav2Lip()
    checkpoint = load_weights(loaded, path)
    loaded.eval()
    assert checkpoint.get("global_step", 7) == 7
    mel, faces = torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded(mel, faces), original(mel, faces))
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_generator_frame_and_sequence_forms_agree():
    model = seeded(Wav2Lip(), seed=2)
    mel, faces = torch.randn(2, 5, 1, 80, 16), torch.rand(2, 6, 5, 96, 96)
    with torch.no_grad():
        sequence = model(mel, faces)
        assert sequence.shape == (2, 3, 5, 96, 96)
        for t in range(5):
            frame = model(mel[:, t], faces[:, :, t])
            assert frame.shape == (2, 3, 96, 96)
            torch.testing.assert_close(sequence[:, :, t], frame, rtol=0, atol=1e-5)
    assert sequence.min() >= 0 and sequence.max() <= 1


def test_syncnet_returns_unit_embeddings_whose_dot_is_cosine():
    model = seeded(SyncNet_color(), seed=3)
    mel, faces = torch.randn(4, 1, 80, 16), torch.rand(4, 15, 48, 96)
    with torch.no_grad():
        audio, face = model(mel, faces)
        raw_audio, raw_face = model.audio_encoder(mel).flatten(1), model.face_encoder(faces).flatten(1)
    assert audio.shape == face.shape == (4, 512)
    torch.testing.assert_close(audio.norm(dim=1), torch.ones(4))
    torch.testing.assert_close((audio * face).sum(1), F.cosine_similarity(raw_audio, raw_face), atol=1e-5, rtol=0)


def test_discriminator_sees_lower_halves_and_its_perceptual_loss_runs_on_cpu():
    model = seeded(Wav2Lip_disc_qual(), seed=4)
    faces = torch.rand(2, 3, 5, 96, 96, requires_grad=True)
    prediction = model(faces)
    assert prediction.shape == (10, 1) and ((prediction > 0) & (prediction < 1)).all()
    # Time-major: row t * B + b is frame t of sample b.
    with torch.no_grad():
        single = model(faces[1:2, :, 3:4])
    torch.testing.assert_close(prediction[3 * 2 + 1], single[0], atol=1e-5, rtol=0)
    # Only the lower half matters.
    changed = faces.detach().clone()
    changed[:, :, :, :48] = 0
    with torch.no_grad():
        torch.testing.assert_close(model(changed), prediction.detach())
    loss = realness_loss(prediction, real=True)  # the generator's adversarial loss
    torch.testing.assert_close(loss, -torch.log(prediction).mean())
    loss.backward()
    assert faces.grad is not None and faces.grad[:, :, :, :48].abs().sum() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_networks_run_on_cuda():
    disc = Wav2Lip_disc_qual().cuda()
    assert disc(torch.rand(1, 3, 5, 96, 96, device="cuda")).device.type == "cuda"
    out = Wav2Lip().cuda().eval()(torch.randn(1, 1, 80, 16, device="cuda"), torch.rand(1, 6, 96, 96, device="cuda"))
    assert out.shape == (1, 3, 96, 96)


def test_fused_generator_gives_the_same_faces():
    from models.fusion import fuse_for_inference

    # In float64: the seeded network turns float32 rounding (1e-7) into output changes of 1e-3.
    model = seeded(Wav2Lip(), seed=6).double()
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    mel, faces = torch.randn(3, 1, 80, 16, dtype=torch.float64), torch.rand(3, 6, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(mel, faces), model(mel, faces), atol=1e-9, rtol=0)
