"""The networks of Wav2Lip, laid out exactly as the released checkpoints store them."""

__all__ = ["Wav2Lip", "Wav2Lip_disc_qual", "SyncNet_color"]


def __getattr__(name):
    # Imported on first use, so that models.inputs (the input constants) loads without torch.
    if name == "SyncNet_color":
        from .syncnet import SyncNet_color
        return SyncNet_color
    if name in ("Wav2Lip", "Wav2Lip_disc_qual"):
        from . import wav2lip
        return getattr(wav2lip, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
