"""Ctrl-C and SIGTERM while a script is still starting: imported by ``system/__init__.py``, so the
handlers are in place from the first project module any script imports, before torch.
``system.cli.run`` hands Ctrl-C back to Python once the script's work begins."""

import os
import signal
import sys
import threading
from pathlib import Path


def stop_while_starting(signum, frame):
    """Ctrl-C or SIGTERM while a script still imports its modules (torch takes a second): the
    line and status ``run`` gives, not a traceback from inside an import. Nothing is made yet
    that needs cleaning up, so the process ends here: an exception raised instead can land in
    a finaliser, where Python prints it as ignored and goes on (seen once in a full run)."""
    word, status = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    os.write(2, f"{word}\n".encode())
    os._exit(status)


def started_as_a_script():
    """Whether the program is one of the project's scripts (at the root or under evaluation/),
    run as ``python script.py``: not pytest, a benchmark or another program importing us."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None or threading.current_thread() is not threading.main_thread():
        return False
    root, folder = Path(__file__).resolve().parent.parent, Path(path).resolve().parent
    return folder == root or root / "evaluation" in (folder, *folder.parents)


if started_as_a_script() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, stop_while_starting)
    signal.signal(signal.SIGTERM, stop_while_starting)
