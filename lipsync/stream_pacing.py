"""A realtime stream's clock: when each frame leaves, and which waiting frames the generator
draws next so that they are ready by then.

Frame k is due at the first push + delay + k / fps. The generator takes the frames due
soonest, as many as it can draw before the first of them is due, by its own measured pace
(seconds per drawn frame); a frame it could not draw in time is not started (it leaves idle),
so a generator slower than real time draws as many frames as it can and none of them late.
"""

import math
import time

HORIZON_SECONDS = 0.25  # frames are drawn no earlier than delay + this before they are due (memory)
PACE_WEIGHT = 0.3  # of the newest batch in the running estimate of the generator's pace
PACE_DECAY = 0.9  # the estimate shrinks by this for each frame given up on after STALLED_SECONDS
STALLED_SECONDS = 1.0  # with nothing drawn: a slow spell that passed may have left the estimate too high


class Pacing:
    def __init__(self, fps, delay):
        self.fps, self.delay = fps, delay
        self.started_at = None  # time.perf_counter() of the first push
        self.per_frame = 0.0  # seconds the generator takes per drawn frame (0: not measured yet)
        self._batches, self._drawn_at = 0, None

    def start(self, now):
        if self.started_at is None:
            self.started_at = now

    def due(self, k):
        """When frame k leaves (wall time, time.perf_counter())."""
        return self.started_at + self.delay + k / self.fps

    def current(self, now):
        """The first frame whose slot has not begun by ``now``."""
        return max(0, math.ceil((now - self.started_at) * self.fps))

    def drawable(self, k, now):
        """Frame k can still be drawn before it is due. Frames given up on while nothing has
        been drawn for a while make the estimate smaller, so that one slow spell does not stop
        the drawing for good."""
        if self.due(k) - now >= self.per_frame:
            return True
        if self._drawn_at is not None and now - self._drawn_at > STALLED_SECONDS:
            self.per_frame *= PACE_DECAY
        return False

    def soon(self, k, now):
        """Frame k is due within the generator's reach (delay + HORIZON_SECONDS)."""
        return self.due(k) - now < self.delay + HORIZON_SECONDS

    def batch(self, jobs, most, now):
        """The next jobs to draw (popped from the deque ``jobs``, each [(k, audio)]): the
        frames due soonest that can all be drawn before the first of them is due."""
        batch = []
        while jobs and len(batch) < most and (not batch or self.soon(jobs[0][0][0], now)):
            first = batch[0][0] if batch else jobs[0][0][0]
            if batch and self.due(first) - now < self.per_frame * (len(batch) + 1):
                break
            batch.extend(jobs.popleft())
        return batch

    def drawn(self, frames, seconds):
        """A batch of ``frames`` drawn frames took ``seconds``; the first batch that drew any
        is left out (its kernels' first run)."""
        self._drawn_at = time.perf_counter()
        self._batches += bool(frames)
        if frames and self._batches > 1:
            pace = seconds / frames
            self.per_frame = pace if not self.per_frame else (1 - PACE_WEIGHT) * self.per_frame + PACE_WEIGHT * pace
