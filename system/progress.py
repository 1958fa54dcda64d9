"""What a run says while it works, beside tqdm's bars, so that no stretch of it is silent
(nothing with --quiet): one line on stderr, at once."""

import sys


def say(line, shown=True):
    """``line`` on stderr, at once (unless not ``shown``: --quiet)."""
    if shown:
        print(line, file=sys.stderr, flush=True)


def loading(what, path, shown=True, device=None):
    """Say that ``what`` is loading from ``path`` (onto ``device``, when named): a large file,
    PyTorch's first import, a GPU's first use take seconds."""
    say(f"loading {what} from {path}" + (f" on {device}" if device is not None else ""), shown)


def counted(number, noun):
    """"1 clip", "2 clips": ``number`` and ``noun``, plural unless one (nouns that take an s)."""
    return f"{number} {noun}{'s' * (number != 1)}"
