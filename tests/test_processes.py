"""Worker processes never see Ctrl-C or SIGTERM: a terminal (or a job scheduler) sends them to
every process of the job, and only the parent, which stops the workers, may act on them."""

import signal
from pathlib import Path

from processes import stop_signals_blocked, spawned_pool
from training.batches import reraise_worker_errors

STOPS = {signal.SIGINT, signal.SIGTERM}


def blocked_in(status):
    """The stop signals /proc/<pid>/status text says are blocked (SigBlk: a hex mask, bit n-1 for signal n)."""
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return {stop for stop in STOPS if mask >> (stop - 1) & 1}


def blocked_here():
    return STOPS & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_spawned_workers_start_with_the_stop_signals_blocked_and_the_parent_keeps_them():
    with spawned_pool(1) as pool:
        status = pool.submit(Path("/proc/self/status").read_text).result(timeout=120)
    assert blocked_in(status) == STOPS  # from the worker's first instruction: the mask survives exec
    assert blocked_here() == set()


def test_data_loader_workers_start_with_the_stop_signals_blocked():
    class Loader:  # records the mask its workers would start with
        def __iter__(self):
            self.blocked = blocked_here()
            return iter([1, 2])

    loader = Loader()
    assert list(reraise_worker_errors(loader)) == [1, 2]
    assert loader.blocked == STOPS and blocked_here() == set()


def test_ctrl_c_while_blocked_is_not_lost():
    caught = False
    try:
        with stop_signals_blocked():
            signal.raise_signal(signal.SIGINT)  # pending until the block ends
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    except KeyboardInterrupt:
        caught = True
    assert caught
