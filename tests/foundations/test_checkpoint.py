import pickle
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from support.synthetic_weights import save_released, seeded

from face_detection import S3FD
from models import SyncNet_color, Wav2Lip, Wav2Lip_disc_qual
from models.checkpoint import (
    CheckpointError,
    identify_network,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    return save_released(seeded(Wav2Lip()), tmp_path_factory.mktemp("ckpt") / "wav2lip.pth")


def test_missing_file():
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: .*nowhere\.pth$"):
        load_weights(Wav2Lip(), "nowhere.pth")


def test_html_page_saved_as_checkpoint(tmp_path):
    page = tmp_path / "wav2lip_gan.pth"
    page.write_text("\n  <!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>...</body></html>")
    with pytest.raises(CheckpointError, match=r"is an HTML page \(\d+ bytes\), not a checkpoint.*download the file itself"):
        read_checkpoint(page)


def test_other_file_saved_as_checkpoint(tmp_path):
    junk = tmp_path / "wav2lip.pth"
    junk.write_bytes(b"GIF89a" + bytes(200))
    with pytest.raises(CheckpointError, match=r"is not a PyTorch checkpoint \(it starts with b'GIF89a"):
        read_checkpoint(junk)


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_file(tmp_path, generator_file, legacy, fraction):
    source = generator_file if legacy else tmp_path / "zip.pth"
    if not legacy:
        save_released(seeded(Wav2Lip()), source, legacy=False)
    data = source.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: max(16, int(len(data) * fraction))])
    with pytest.raises(CheckpointError, match=r"is truncated or corrupt \([\d,]+ bytes\); download it again"):
        read_checkpoint(cut)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError, match="holds pickled Python objects, not only weights"):
        read_checkpoint(path)


def test_file_without_state_dict(tmp_path):
    path = tmp_path / "stats.pth"
    torch.save({"global_step": 3, "losses": [0.5]}, path)
    with pytest.raises(CheckpointError, match=r"holds no state dict \(a dict with keys \['global_step', 'losses'\]\)"):
        read_checkpoint(path)


@pytest.mark.parametrize("saved, wanted, message", [
    (SyncNet_color, Wav2Lip, "is a checkpoint of the expert lip-sync SyncNet \\(lipsync_expert.pth\\), but the Wav2Lip generator"),
    (Wav2Lip, SyncNet_color, "is a checkpoint of the Wav2Lip generator .*, but the expert lip-sync SyncNet"),
    (Wav2Lip_disc_qual, Wav2Lip, "is a checkpoint of the visual-quality discriminator"),
    (S3FD, Wav2Lip, "is a checkpoint of the S3FD face detector \\(s3fd.pth\\)"),
    (Wav2Lip, S3FD, "is a checkpoint of the Wav2Lip generator .*, but the S3FD face detector"),
])
def test_checkpoint_of_another_network(tmp_path, saved, wanted, message):
    path = save_released(saved(), tmp_path / "other.pth", wrapped=saved is not S3FD)
    with pytest.raises(CheckpointError, match=message):
        load_weights(wanted(), path)


def test_lse_syncnet_is_recognised(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    torch.save({"netcnnaud.0.weight": torch.zeros(64, 1, 3, 3), "netcnnlip.0.weight": torch.zeros(96, 15, 3, 5, 5)}, path)
    with pytest.raises(CheckpointError, match=r"the LSE SyncNet of Chung & Zisserman \(syncnet_v2.model\)"):
        load_weights(Wav2Lip(), path)


def test_missing_unexpected_and_misshapen_keys(tmp_path):
    state = seeded(Wav2Lip()).state_dict()
    for removed in list(state)[:5]:
        del state[removed]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=(
        r"does not fit Wav2Lip: 5 missing keys \(face_encoder_blocks.0.0.conv_block.0.weight, "
        r".*, \.\.\. \(2 more\)\); 1 unexpected keys \(extra.weight\)"
    )):
        load_weights(Wav2Lip(), tmp_path / "partial.pth")

    state = seeded(Wav2Lip()).state_dict()
    state["output_block.1.bias"] = torch.zeros(4)
    torch.save(state, tmp_path / "misshapen.pth")
    with pytest.raises(CheckpointError, match=r"shapes differ for output_block.1.bias \(4,\) vs \(3,\)"):
        load_weights(Wav2Lip(), tmp_path / "misshapen.pth")


def test_identify_network_ignores_module_prefix():
    keys = ["module." + key for key in SyncNet_color().state_dict()]
    assert identify_network(keys) == "the expert lip-sync SyncNet (lipsync_expert.pth)"
    assert identify_network(["foo.weight"]) is None


def test_save_checkpoint_writes_the_released_format_atomically(tmp_path):
    model = torch.nn.DataParallel(seeded(SyncNet_color(), seed=5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    path = save_checkpoint(tmp_path / "sub" / "checkpoint_step000000005.pth", model, optimizer, 5, 2)
    data = torch.load(path, weights_only=True)
    assert set(data) == {"state_dict", "optimizer", "global_step", "global_epoch", "face_size"}
    assert (data["global_step"], data["global_epoch"], data["face_size"]) == (5, 2, 96)
    assert not any(key.startswith("module.") for key in data["state_dict"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    restored = SyncNet_color()
    assert load_weights(restored, path)["global_step"] == 5
    for key, value in model.module.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pth", seeded(SyncNet_color()), global_step=1)
    before = path.read_bytes()

    class Unsaveable(torch.nn.Module):
        def state_dict(self):
            return {"weight": lambda: None}  # torch.save cannot pickle a lambda

    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        save_checkpoint(path, Unsaveable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]


def test_scripts_show_one_line_and_exit_non_zero(tmp_path):
    page = tmp_path / "wav2lip.pth"
    page.write_text("<html><body>quota exceeded</body></html>")
    program = (
        "import sys; from system import cli; from models.checkpoint import read_checkpoint\n"
        "sys.exit(cli.run(lambda argv: read_checkpoint(argv[0])))"
    )
    result = subprocess.run([sys.executable, "-c", program, str(page)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and "is an HTML page" in result.stderr
    verbose = subprocess.run([sys.executable, "-c", program, str(page), "--verbose"], cwd=ROOT, capture_output=True, text=True)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_a_model_built_on_the_meta_device_loads_as_a_built_one(tmp_path, generator_file):
    """Inference builds the generator without initialising it (its weights are overwritten at
    once): the loaded model must equal one built normally, for the released file, for a file
    from before BatchNorm step counters, and for weights saved in half precision."""
    old = {key: value for key, value in torch.load(generator_file, weights_only=True)["state_dict"].items()
           if not key.endswith("num_batches_tracked")}
    torch.save({"state_dict": old}, tmp_path / "old.pth")
    torch.save({key: value.half() if value.is_floating_point() else value for key, value in old.items()},
               tmp_path / "half.pth")
    for path in (generator_file, tmp_path / "old.pth", tmp_path / "half.pth"):
        built = Wav2Lip()
        load_weights(built, path)
        with torch.device("meta"):
            lazy = Wav2Lip()
        load_weights(lazy, path)
        assert list(lazy.state_dict()) == list(built.state_dict())
        for (key, value), expected in zip(lazy.state_dict().items(), built.state_dict().values()):
            assert value.device.type == "cpu" and value.dtype == expected.dtype, key
            assert torch.equal(value, expected), key
        assert all(parameter.requires_grad for parameter in lazy.parameters())


def flip_one_bit(path, damaged):
    """A copy of the zip checkpoint ``path`` with one bit flipped in its largest tensor's bytes
    (an exponent bit: a small weight becomes about 1e37, as a bad disk sector or cable makes it)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    start = entry.header_offset + 30 + name_length + extra_length
    data[start + 4 * (entry.file_size // 8) + 3] ^= 0x40  # the high exponent bit of one float32
    damaged.write_bytes(bytes(data))
    return entry.filename


def test_a_flipped_bit_in_a_zip_checkpoint_is_one_line_naming_the_file(tmp_path):
    model = seeded(SyncNet_color(), 3)
    path = save_checkpoint(tmp_path / "checkpoint_step000000001.pth", model, global_step=1)
    damaged = tmp_path / "copied.pth"
    entry = flip_one_bit(path, damaged)
    with pytest.raises(CheckpointError) as caught:
        load_weights(SyncNet_color(), damaged)
    assert str(caught.value).startswith(f"{damaged} is damaged ({damaged.stat().st_size:,} bytes): Bad CRC-32 for "
                                        f"file '{entry}'")
    assert "\n" not in str(caught.value)
    load_weights(SyncNet_color(), path)  # the undamaged file loads as before


def test_an_interrupt_while_saving_is_the_interrupt_and_leaves_no_file(tmp_path, monkeypatch):
    from models import checkpoint

    written, write = [], checkpoint._WholeWrites.write

    def interrupted(self, data):  # Ctrl-C (or SIGTERM, cli.Terminated) arrives in the fifth write
        written.append(len(data))
        if len(written) == 5:
            raise KeyboardInterrupt
        return write(self, data)

    monkeypatch.setattr(checkpoint._WholeWrites, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):  # not torch's "unexpected pos" RuntimeError, which cli.run would print
        save_checkpoint(tmp_path / "checkpoint_step000000001.pth", seeded(SyncNet_color(), 0))
    assert list(tmp_path.iterdir()) == []
