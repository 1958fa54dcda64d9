"""Does this voice belong to this face? The expert SyncNet's audio-visual cosine similarities.

For each mel chunk i whose five faces i..i+4 all exist, the expert embeds the chunk and the
lower halves of the five faces (BGR, stacked on channels, as it was trained, at the face size
its checkpoint records: faces of another size, a generator's of 192 pixels scored by the
released 96-pixel expert, are resized to it); their
dot product is a cosine similarity. Matched voice/person pairs score far higher than
mismatched ones.
"""

import collections
import copy

import cv2
import numpy as np
import torch

from models import SyncNet_color
from models.checkpoint import load_network
from models.inputs import WINDOW, stack_lower_halves


class SyncSimilarity:
    """Collects faces as inference produces them and scores complete 5-frame windows.

        scorer = SyncSimilarity(checkpoint, device)
        scorer.add(indices, input_faces, generated_faces, mels)   # per generator batch, in order
        result = scorer.finish()   # {"chunks": [...], "input": [...], "result": [...]}

    The windows are scored 64 at a time; ``scored`` counts those done (for a progress bar).
    """

    def __init__(self, checkpoint_path, device="cpu", batch_size=64):
        self.model = load_network(SyncNet_color, checkpoint_path, device)[0].eval()
        self.face_size = self.model.face_size
        self.device, self.batch_size = torch.device(device), batch_size
        self._recent = collections.deque(maxlen=WINDOW)  # (index, input face, generated face, mel chunk)
        self._windows = []
        self.scores = {"chunks": [], "input": [], "result": []}

    def another(self):
        """A collector of its own (another voice's faces) scored by the same expert."""
        other = copy.copy(self)
        other._recent, other._windows = collections.deque(maxlen=WINDOW), []
        other.scores = {"chunks": [], "input": [], "result": []}
        return other

    def add(self, indices, input_faces, generated_faces, mels):
        """Each output frame's index, input and generated faces, and mel chunk."""
        for index, face, generated, mel in zip(indices, input_faces, generated_faces, mels):
            self._recent.append((index, face, generated, mel))
            if len(self._recent) == WINDOW and self._recent[-1][0] - self._recent[0][0] == WINDOW - 1:
                self._windows.append(tuple(self._recent))
            if len(self._windows) >= self.batch_size:
                self._score()

    @property
    def scored(self):
        return len(self.scores["chunks"])

    def finish(self):
        self._score()
        return self.scores

    def _score(self):
        if not self._windows:
            return
        starts = [window[0][0] for window in self._windows]
        mels = [window[0][3] for window in self._windows]  # the chunk of the window's first frame
        for key, column in (("input", 1), ("result", 2)):
            self.scores[key].extend(self.cosines(mels, [[item[column] for item in window] for window in self._windows]))
        self.scores["chunks"].extend(starts)
        self._windows = []

    @torch.no_grad()
    def cosines(self, mels, windows):
        """The cosine similarity of each mel chunk (80 x 16) with its window of T square BGR faces."""
        audio = torch.from_numpy(np.stack(mels)).float().unsqueeze(1).to(self.device)
        windows = np.stack(windows)  # (n, T, H, W, 3)
        if windows.shape[2] != self.face_size:
            windows = np.stack([[cv2.resize(face, (self.face_size,) * 2) for face in window] for window in windows])
        faces = stack_lower_halves(torch.from_numpy(windows).to(self.device).permute(0, 4, 1, 2, 3).float() / 255)
        audio_embedding, face_embedding = self.model(audio, faces)
        return (audio_embedding * face_embedding).sum(1).cpu().tolist()

