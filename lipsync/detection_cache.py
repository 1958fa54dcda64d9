"""Face detections kept on disk, so that re-dubbing a video with new audio skips detection.

An entry is keyed by the video's content (not its name or date) and by every setting that
changes what the detector sees or says: frame transforms, detection size and stride, batch
size, precision and the detector weights' content.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from atomic_write import atomic_output
from checkpoint import file_digest


class DetectionCache:
    """One video's detections under ``directory``: ``load()`` -> (boxes, status) or None; ``save``."""

    def __init__(self, directory, video_path, settings):
        self.settings = json.dumps({"video": file_digest(video_path), **settings}, sort_keys=True, default=str)
        key = hashlib.sha256(self.settings.encode()).hexdigest()[:32]
        self.path = Path(directory) / f"{key}.npz"

    def load(self):
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as entry:
                if str(entry["settings"]) != self.settings:
                    return None
                return entry["boxes"], entry["status"]
        except (OSError, ValueError, KeyError) as error:
            print(f"warning: ignoring unreadable face cache entry {self.path}: {error}", file=sys.stderr)
            return None

    def save(self, boxes, status):
        with atomic_output(self.path) as temporary:
            np.savez(temporary, boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
                     status=np.asarray(status, np.int8), settings=np.array(self.settings))
