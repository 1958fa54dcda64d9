"""Reading and writing checkpoints in the released Wav2Lip format, with one-line errors.

The released files are dicts of ``state_dict``, ``optimizer``, ``global_step`` and
``global_epoch`` (keys prefixed ``module.`` when trained under DataParallel) or bare state
dicts (S3FD, the LSE SyncNet), in legacy or zip serialization. Everything here loads with
``weights_only=True``: no code in a checkpoint is ever run. A zip-serialised file (what
torch.save writes, and so every checkpoint the trainers write) carries a CRC-32 of each entry,
which torch.load does not check: they are checked here, beside the load, so a flipped bit is
an error naming the file, not a weight of -1e37. The legacy format (the released files) has
no checksums.
"""

import contextlib
import pickle
import threading
import zipfile
from pathlib import Path

import torch

from models.inputs import FACE_SIZE, FACE_SIZES
from system.atomic_write import atomic_output
from system.digests import file_digest  # noqa: F401 - read from here by the scripts
from system.errors import UserError

# A key only that network has (after "module." is stripped), and how users know the file.
_NETWORK_MARKERS = [
    ("face_decoder_blocks.0.0.conv_block.0.weight", "the Wav2Lip generator (wav2lip.pth / wav2lip_gan.pth)"),
    ("binary_pred.0.weight", "the visual-quality discriminator (visual_quality_disc.pth)"),
    ("face_encoder.0.conv_block.0.weight", "the expert lip-sync SyncNet (lipsync_expert.pth)"),
    ("conv3_3_norm_mbox_conf.weight", "the S3FD face detector (s3fd.pth)"),
    ("netcnnaud.0.weight", "the LSE SyncNet of Chung & Zisserman (syncnet_v2.model)"),
    ("Mixed_7c.branch_pool.conv.weight", "pytorch-fid's InceptionV3 (pt_inception-2015-12-05-6726825d.pth)"),
]

_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickle protocol 2 + torch's magic number


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, not a checkpoint, damaged, or of another network."""


class FaceSizeMismatch(CheckpointError):
    """A checkpoint of the right network for faces of another size (``found``, ``wanted``)."""

    def __init__(self, message, found, wanted):
        super().__init__(message)
        self.found, self.wanted = found, wanted


def identify_network(keys):
    """Which known network a set of state-dict keys belongs to, in words; None if unknown."""
    keys = {_strip_module(key) for key in keys}
    return next((name for marker, name in _NETWORK_MARKERS if marker in keys), None)


def read_checkpoint(path, map_location="cpu"):
    """Load a checkpoint file as a dict whose ``state_dict`` has no ``module.`` prefixes.

    A bare state dict comes back as ``{"state_dict": ...}``; the released 4-key dicts keep
    their ``optimizer``, ``global_step`` and ``global_epoch``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if head.lstrip()[:1] == b"<" and b"html" in head.lower():
        raise CheckpointError(
            f"{path} is an HTML page ({size:,} bytes), not a checkpoint: the download saved a web page "
            "(often a sign-in or quota page) under the checkpoint's name; download the file itself"
        )
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_LEGACY_MAGIC)):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with {head[:8]!r})")
    damage = _CrcCheck(path) if head.startswith(_ZIP_MAGIC) else None
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
        if damage is not None:
            damage.raise_if_found()
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"{path} holds pickled Python objects, not only weights; it is not loaded, because "
                "unpickling them could run code (save the model's state_dict() instead)"
            ) from None
        raise CheckpointError(f"{path} is corrupt ({size:,} bytes): {_first_line(error)}") from None
    except (EOFError, RuntimeError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({size:,} bytes); download it again ({_first_line(error)})"
        ) from None
    return _normalise(data, path)


class _CrcCheck(threading.Thread):
    """Reads every entry of a zip checkpoint, checking its CRC-32, in a thread beside torch.load
    (zlib releases the GIL, so on two cores the check costs little wall time)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.damaged = path, None
        self.start()

    def run(self):
        try:
            with zipfile.ZipFile(self.path) as archive:
                for entry in archive.infolist():
                    with archive.open(entry) as member:
                        while member.read(1 << 24):  # the CRC is compared at the entry's end
                            pass
        except zipfile.BadZipFile as error:
            self.damaged = str(error)
        except (OSError, EOFError, ValueError, RuntimeError):
            pass  # what torch.load says about such a file is the error

    def raise_if_found(self):
        self.join()
        if self.damaged is not None:
            size = Path(self.path).stat().st_size
            raise CheckpointError(f"{self.path} is damaged ({size:,} bytes): {self.damaged} (its bytes changed after "
                                  "it was written, by a disk, memory or copy error); restore it or download it again")


def _normalise(data, path):
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        checkpoint = dict(data)
    elif isinstance(data, dict) and data and all(isinstance(value, torch.Tensor) for value in data.values()):
        checkpoint = {"state_dict": data}
    else:
        what = f"a dict with keys {sorted(map(str, data))[:6]}" if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is a PyTorch file but holds no state dict ({what})")
    checkpoint["state_dict"] = {_strip_module(key): value for key, value in checkpoint["state_dict"].items()}
    return checkpoint


def load_weights(model, path, device="cpu"):
    """Load ``path`` into ``model`` strictly, move it to ``device``; returns the checkpoint dict.

    A file of another network or of another face size, missing or unexpected keys and shape
    mismatches are CheckpointErrors that say which.
    """
    checkpoint = read_checkpoint(path)
    _load_state(model, checkpoint, path, device)
    return checkpoint


def load_network(network_class, path, device="cpu", meta=False):
    """(the network of ``path`` built at the face size it records, its checkpoint dict): a
    ``network_class`` (Wav2Lip, SyncNet_color, Wav2Lip_disc_qual) taking ``face_size``.
    ``meta``: built without memory or random initialisation, the file's tensors taken as they are."""
    checkpoint = read_checkpoint(path)
    with torch.device("meta") if meta else contextlib.nullcontext():
        model = network_class(face_size=face_size_of(checkpoint, path))
    _load_state(model, checkpoint, path, device)
    return model, checkpoint


def face_size_of(checkpoint, path):
    """The face size (pixels a side) of a checkpoint's generator, expert or discriminator: the
    one it records (key "face_size", in every checkpoint the trainers write), checked against its
    layers, where each doubling of 96 adds face-encoder levels (models.inputs.FACE_SIZES). The
    released files record none: their layers say 96."""
    layers, recorded = _size_of_layers(checkpoint["state_dict"]), checkpoint.get("face_size")
    if recorded is not None and (type(recorded) is not int or recorded not in FACE_SIZES):
        raise CheckpointError(f"{path} records face_size {recorded!r}, not one of {', '.join(map(str, FACE_SIZES))}")
    if None not in (layers, recorded) and layers != recorded:
        raise CheckpointError(f"{path} records face_size {recorded}, but its layers are those of a {layers}-pixel network")
    return layers or recorded or FACE_SIZE


def _size_of_layers(state):
    """The face size the numbered face-encoder layers of a state dict make (None if they make
    none): 7 blocks of the generator or discriminator, 17 layers of the expert, at 96 pixels."""
    for prefix, at_96, per_level in (("face_encoder_blocks.", 7, 1), ("face_encoder.", 17, 2)):
        count = len({key[len(prefix):].split(".")[0] for key in state if key.startswith(prefix)})
        levels, odd = divmod(count - at_96, per_level)
        if count and not odd and 0 <= levels < len(FACE_SIZES):
            return FACE_SIZES[levels]
    return None


def _load_state(model, checkpoint, path, device):
    state = checkpoint["state_dict"]
    expected = model.state_dict()
    wanted, found = identify_network(expected), identify_network(state)
    if found is not None and found != wanted:
        raise CheckpointError(f"{path} is a checkpoint of {found}, but {wanted or type(model).__name__} is needed here")
    wanted_size = getattr(model, "face_size", None)
    if wanted_size is not None and (size := face_size_of(checkpoint, path)) != wanted_size:
        raise FaceSizeMismatch(f"{path} holds {found or 'a network'} for {size}-pixel faces (face_size {size}), "
                               f"but one for {wanted_size}-pixel faces is needed here", size, wanted_size)

    # Files saved before PyTorch 0.4.1 have no BatchNorm step counters; they are unused in eval.
    state.update({key: value for key, value in expected.items() if key.endswith("num_batches_tracked") and key not in state})
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: " + "; ".join(parts))
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items() if tuple(state[key].shape) != tuple(value.shape)
    ]
    if mismatched:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: shapes differ for {_few(mismatched)}")

    if any(value.is_meta for value in expected.values()):
        # A model built on the meta device (no memory, no random initialisation: faster to
        # start) takes the file's tensors themselves, in the dtypes it was built with.
        state = {key: value.to(expected[key].dtype) if not value.is_meta else torch.zeros_like(value, device="cpu")
                 for key, value in state.items()}
        model.load_state_dict(state, strict=True, assign=True)
    else:
        model.load_state_dict(state, strict=True)
    model.to(device)


def save_checkpoint(path, model, optimizer=None, global_step=0, global_epoch=0, **extras):
    """Write the released 4-key format atomically; ``module.`` wrappers (DDP) are unwrapped.

    The network's ``face_size`` and ``extras`` (such as the trainers' ``syncnet_wt``) are added
    as further keys, which readers of the released format ignore.
    """
    model = getattr(model, "module", model)
    recorded = {"face_size": model.face_size} if hasattr(model, "face_size") else {}  # see face_size_of
    checkpoint = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "global_step": int(global_step),
        "global_epoch": int(global_epoch),
        **recorded,
        **extras,
    }
    with atomic_output(path) as temporary, open(temporary, "wb", buffering=0) as handle:
        try:
            torch.save(checkpoint, _WholeWrites(handle))
        except RuntimeError as error:  # torch's zip writer fails again while closing: keep the cause
            cause = error.__context__  # a full disk, or Ctrl-C / SIGTERM (not an Exception) mid-write
            if isinstance(cause, OSError) or (cause is not None and not isinstance(cause, Exception)):
                raise cause from None
            raise
    return Path(path)


class _WholeWrites:
    """A file for torch.save whose writes are whole or raise the OSError that says why.

    torch.save ignores short writes, so on a full disk it only reports "unexpected pos";
    written through this, the same disk says "No space left on device".
    """

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += self._handle.write(view[done:])  # raises OSError(ENOSPC, ...) once nothing fits
        return done

    def flush(self):
        pass


def _strip_module(key):
    return key[len("module."):] if key.startswith("module.") else key


def _few(items, count=3):
    shown = ", ".join(items[:count])
    return shown + (f", ... ({len(items) - count} more)" if len(items) > count else "")


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def file_version(path):
    """(modification time, size) of a file, or None when it cannot be read: in-memory caches of
    loaded networks key on it, so a rewritten file is loaded again."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None  # the loader gives the error
    return stat.st_mtime_ns, stat.st_size
