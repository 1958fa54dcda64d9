"""The face of a stream, prepared once: its frames looped, each with its box."""

import threading

from lipsync.face_sources import face_source
from lipsync.frames import FrameSource
from system.errors import UserError

# Frames decoded ahead of the oldest one still wanted, at most: the generator's batches and
# the frames waiting to leave (a 720p frame is 2.8 MB).
DECODED_AHEAD = 256


class StreamFace:
    """Output frame k shows face frame k mod N, as inference loops a video (a still: one frame).

    The boxes of every frame are found when the stream opens (--box, the face cache or S3FD,
    as inference finds them); the frames are decoded again as the stream loops over them, so
    memory does not grow with the face video's length. frame(k) may be asked from several
    threads, in any order within DECODED_AHEAD of the oldest frame not yet released."""

    def __init__(self, options, device, boxes=None):
        self.source = source = FrameSource(options)
        self.fps = float(source.fps)
        if boxes is None:  # not found yet (a server finds them once for all its streams)
            everything = 1 << 40
            found = face_source(options, source, everything, device)
            boxes = [box for _, _, box in found.boxed_frames(source.frames(), everything)]
        self.boxes = list(boxes)
        if not self.boxes:
            raise UserError(f"no frames could be read from {options.face}")
        self._lock = threading.Lock()
        self._decoded, self._next, self._frames, self._released = {}, 0, None, -1

    def box(self, k):
        """(y1, y2, x1, x2) of output frame k's face, or None: no face there."""
        return self.boxes[k % len(self.boxes)]

    def frame(self, k):
        """Output frame k's face frame (BGR; shared: copy it before drawing on it), or None:
        it was released (decoding it again from the video's start would hold every thread up)."""
        with self._lock:
            if k in self._decoded:
                return self._decoded[k]
            if k <= self._released:
                return None
            if self._frames is None or k < self._next:  # not decoded yet: decode anew from k
                self._close_decoder()
                self._frames = self.source.looped()
                for _ in range(k % len(self.boxes)):
                    next(self._frames)
                self._decoded, self._next = {}, k
            while self._next <= k:
                self._decoded[self._next] = next(self._frames)
                self._next += 1
                if len(self._decoded) > DECODED_AHEAD:
                    del self._decoded[min(self._decoded)]
            return self._decoded[k]

    def release(self, k):
        """Output frames up to k will not be asked for again."""
        with self._lock:
            self._released = max(self._released, k)
            for index in [index for index in self._decoded if index <= k]:
                del self._decoded[index]

    def close(self):
        """The decoder closed (its threads end now, not whenever the garbage is collected)."""
        with self._lock:
            self._close_decoder()

    def _close_decoder(self):
        if self._frames is not None:
            self._frames.close()
            self._frames = None
