"""Stage threads joined by bounded channels (the first failure anywhere stops every stage), and
pools of worker threads."""

import contextlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor


class Stopped(Exception):
    """Raised in a stage when another stage has failed."""


class Pipeline:
    """Stage threads joined by channels; the first failure stops every stage and is re-raised by join()."""

    def __init__(self):
        self.stop, self.error, self.threads = threading.Event(), None, []

    def channel(self, size):
        return Channel(size, self.stop)

    def start(self, stage, *args):
        thread = threading.Thread(target=self._guarded, args=(stage, *args), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guarded(self, stage, *args):
        try:
            stage(*args)
        except Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self.fail(error)

    def fail(self, error):
        if self.error is None:
            self.error = error
        self.stop.set()

    def join(self):
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error


class Channel:
    """A bounded queue whose put and get give up (raise Stopped) once the pipeline stops."""

    _END = object()

    def __init__(self, size, stop):
        self._queue, self._stop = queue.Queue(size), stop

    def put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                pass
        raise Stopped

    def close(self):
        self.put(self._END)

    def __iter__(self):
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    raise Stopped from None
                continue
            if item is self._END:
                return
            yield item


@contextlib.contextmanager
def worker_pool(count, initializer=None):
    """``count`` threads to submit work to; on leaving, work not yet started is dropped."""
    pool = ThreadPoolExecutor(count, thread_name_prefix="worker", initializer=initializer)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

