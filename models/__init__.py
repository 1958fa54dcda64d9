"""The networks of Wav2Lip, laid out exactly as the released checkpoints store them."""

from .syncnet import SyncNet_color
from .wav2lip import Wav2Lip, Wav2Lip_disc_qual

__all__ = ["Wav2Lip", "Wav2Lip_disc_qual", "SyncNet_color"]
