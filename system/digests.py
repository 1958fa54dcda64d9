"""What a file is, whatever its name: the SHA-256 of its bytes (no torch needed)."""

import hashlib


def file_digest(path, chunk_size=1 << 20):
    """The SHA-256 of a file's bytes: what a weights file (or a video) is, whatever its name."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
