"""Pools of worker processes that start clean and end with the process that started them.

Workers are spawned, not forked: a fork of a process that already runs threads (PyTorch's,
OpenCV's, a detector thread) copies any lock one of them holds at that instant, held
forever, and the child can hang on it. And each worker is killed when its parent dies, even
by kill -9, instead of living on, re-parented to init. Workers never see Ctrl-C or SIGTERM: a
terminal (or a job scheduler) sends the signal to every process of the job, and a worker
interrupted (while it imports, say) prints a traceback of its own or dies mid-write; the
parent, which the signal reaches too, stops them as it stops.
"""

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def usable_cores():
    """The CPU cores this process may run on (its affinity, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def spawned_pool(workers):
    """A ProcessPoolExecutor of ``workers`` spawned processes that die with this one and
    leave Ctrl-C and SIGTERM to it.

    Submit from a thread that outlives the pool (the main thread): on Linux the death signal
    follows the thread that started the worker.
    """
    return _SpawnedPool(workers, mp_context=multiprocessing.get_context("spawn"),
                        initializer=die_with_parent, initargs=(os.getpid(),))


class _SpawnedPool(ProcessPoolExecutor):
    def submit(self, *args, **kwargs):
        with stop_signals_blocked():  # the pool starts its workers in submit
            return super().submit(*args, **kwargs)


STOP_SIGNALS = {signal.SIGINT, getattr(signal, "SIGTERM", signal.SIGINT)}


@contextlib.contextmanager
def stop_signals_blocked():
    """Block SIGINT and SIGTERM in this thread meanwhile: a process started here keeps them
    blocked across exec, from its first instruction, so they never reach it. One that comes
    meanwhile is not lost: another thread takes it, or this one once the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signals to the job's other processes
        yield
        return
    # The first spawn starts multiprocessing's resource tracker, which unblocks both signals
    # again once it has started it: start it before the block, so the block holds.
    from multiprocessing import resource_tracker  # noqa: PLC0415

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def die_with_parent(parent):
    """Worker initializer: end this process when ``parent`` dies.

    Linux delivers SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); elsewhere a
    thread watches the parent's pid.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        watch = False
    except (OSError, AttributeError):
        watch = True
    if os.getppid() != parent:  # died before the prctl took effect
        os._exit(1)
    if watch:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent):
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
