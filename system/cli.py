"""What every command-line script shares: one-line errors and exit codes (its flags: system.flags)."""

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from system.errors import UserError, describe_os_error
from system.startup import stop_while_starting


class Terminated(BaseException):
    """SIGTERM (``kill``, a job scheduler's stop), raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, so that the same clean-up runs: temporaries removed, workers stopped."""


def run(main, argv=None):
    """Call ``main(argv)``; a UserError or an OSError (a full disk, a read-only folder, a
    missing file) becomes one line on stderr and exit status 1.

    ``--verbose`` anywhere on the command line shows the traceback instead. Ctrl-C exits 130
    and SIGTERM 143, each with one line, after the clean-up that an error gets. Returns main's
    return value, so ``sys.exit(run(main))`` passes it on.
    """
    as_script, argv = argv is None, sys.argv[1:] if argv is None else argv
    if as_script and signal.getsignal(signal.SIGINT) is stop_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C cleans up as it stops
    try:
        with _terminated_on_sigterm():
            return main(argv)
    except BrokenPipeError:
        # Whoever read the output (``| head``) has gone: stop quietly, as Unix tools do, and keep
        # the interpreter's final flush from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (UserError, OSError) as error:
        if "--verbose" in argv:
            raise
        message = describe_os_error(error) if isinstance(error, OSError) else str(error)
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _stopped("interrupted", 130, signal.SIGINT, as_script)
    except Terminated:
        return _stopped("terminated", 143, signal.SIGTERM, as_script)


@contextlib.contextmanager
def _terminated_on_sigterm():
    """While the block runs in the main thread, SIGTERM raises Terminated there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not break the clean-up
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(word, status, signum, as_script):
    """The one line of a run stopped by a signal. A script is about to exit: later signals of
    the same kind (a second Ctrl-C) are ignored, so that none ends its exit with a traceback."""
    if as_script:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing to set
            signal.signal(signum, signal.SIG_IGN)
    print(word, file=sys.stderr)
    return status


def existing_folder(path, flag):
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{flag} {path} is not a folder")
    return path
