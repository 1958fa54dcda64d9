"""Face detections kept on disk, so that re-dubbing a video with new audio skips detection.

An entry is keyed by the video's content (not its name or date) and by every setting that
changes what the detector sees or says: frame transforms, detection size and stride, batch
size, precision and the detector weights' content.
"""

import hashlib
import json
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lipsync.box_planning import FACE, NO_FACE, NOT_RUN
from models.checkpoint import file_digest
from system.atomic_write import atomic_output


class DetectionCache:
    """One video's detections under ``directory``: ``load()`` -> (boxes, status) or None; ``save``."""

    def __init__(self, directory, video_path, settings):
        self.settings = json.dumps({"video": file_digest(video_path), **settings}, sort_keys=True, default=str)
        key = hashlib.sha256(self.settings.encode()).hexdigest()[:32]
        self.path = Path(directory) / f"{key}.npz"

    def load(self):
        """The entry's (boxes, status), or None: not there, or damaged (said in one warning line;
        detection runs again and ``save`` rewrites it)."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as entry:
                if str(entry["settings"]) != self.settings:
                    return None
                return _checked(entry["boxes"], entry["status"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"warning: ignoring the damaged face cache entry {self.path} ({reason}): detecting faces again "
                  "and rewriting it", file=sys.stderr)
            return None

    def save(self, boxes, status):
        with atomic_output(self.path) as temporary:
            np.savez(temporary, boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
                     status=np.asarray(status, np.int8), settings=np.array(self.settings))


def _checked(boxes, status):
    """An entry's arrays, if they are what ``save`` writes: one box and one known status a frame."""
    if boxes.ndim != 2 or boxes.shape[1:] != (4,) or status.shape != (len(boxes),):
        raise ValueError(f"{boxes.shape} boxes for {status.shape} frames")
    if not np.isin(status, (FACE, NO_FACE, NOT_RUN)).all() or not np.isfinite(boxes).all():
        raise ValueError("unknown statuses or boxes that are not numbers")
    return boxes, status
