"""Worker processes never see Ctrl-C or SIGTERM: a terminal (or a job scheduler) sends them to
every process of the job, and only the parent, which stops the workers, may act on them."""

import signal
from pathlib import Path

from system.processes import spawned_pool, stop_signals_blocked
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


def test_the_first_worker_of_a_fresh_process_starts_blocked_too(tmp_path):
    """The first spawn of a process (here a DataLoader's) starts multiprocessing's resource
    tracker, which unblocks the stop signals once it runs; the worker must still start blocked."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
            "import torch.utils.data as data; from training.batches import reraise_worker_errors\n"
            "class Status(data.Dataset):\n"
            "    def __len__(self): return 1\n"
            "    def __getitem__(self, i): return Path('/proc/self/status').read_text()\n"
            "def first(batch): return batch[0]\n"
            "if __name__ == '__main__':\n"
            "    loader = data.DataLoader(Status(), num_workers=1, multiprocessing_context='spawn', collate_fn=first)\n"
            "    print(next(iter(reraise_worker_errors(loader))))\n")
    (tmp_path / "first_worker.py").write_text(code)  # spawn imports the main module again: a file, not -c
    status = subprocess.run([sys.executable, str(tmp_path / "first_worker.py"), str(ROOT)], capture_output=True, text=True, timeout=120,
                            check=True).stdout
    assert blocked_in(status) == STOPS
