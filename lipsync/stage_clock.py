"""Where a run's time goes: seconds per stage, and how busy each stage thread was.

    clock = StageClock()
    with clock.measure("mel"): ...
    frames = clock.timed(frames, "decode")      # time spent inside the iterator's next()
    clock.figures()  ->  {"seconds": {...}, "busy": {...}, "first_frame": s, "wall": s}

Each stage belongs to one thread of the pipeline (THREADS); a thread's busy share is the time
its stages took over the time the pipeline ran (times its workers, where several threads share
a stage: set_workers), so the bottleneck is the thread near 100 %.
Stages that nest (detection pulls frames through decode) are kept apart: "detection" is the
time of the box source less the decoding it pulled.
"""

import contextlib
import threading
import time

# pipeline thread -> the stages it runs (start-up runs before the threads, in the caller's thread)
THREADS = {"faces": ("decode", "detection", "crops"), "generator": ("generator",), "compose": ("paste", "encode")}


class StageClock:
    def __init__(self, started=None):
        self.started = time.perf_counter() if started is None else started
        self.seconds, self.first_frame = {}, None
        self._pipeline, self._workers, self._lock = [None, None], {}, threading.Lock()

    def add(self, stage, seconds):
        with self._lock:  # stages are timed from several threads
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def set_workers(self, thread, count):
        """``thread`` (a key of THREADS) runs on ``count`` threads at once."""
        self._workers[thread] = count

    @contextlib.contextmanager
    def measure(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def timed(self, iterable, stage):
        """``iterable``'s items, the time spent producing them added to ``stage``."""
        iterator = iter(iterable)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(stage, time.perf_counter() - start)
                return
            self.add(stage, time.perf_counter() - start)
            yield item

    def pipeline_started(self):
        self._pipeline[0] = time.perf_counter()

    def pipeline_ended(self):
        self._pipeline[1] = time.perf_counter()

    def frame_written(self):
        if self.first_frame is None:
            self.first_frame = time.perf_counter() - self.started

    def figures(self):
        """Seconds per stage, each thread's busy share, seconds to the first frame written."""
        start, end = self._pipeline
        ran = max((end or time.perf_counter()) - (start or self.started), 1e-9)
        busy = {thread: sum(self.seconds.get(stage, 0.0) for stage in stages) / (ran * self._workers.get(thread, 1))
                for thread, stages in THREADS.items()}
        return {"seconds": dict(self.seconds), "busy": busy, "first_frame": self.first_frame,
                "pipeline": ran, "wall": time.perf_counter() - self.started}
