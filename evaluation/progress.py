"""What the evaluation scripts say while they work, beside tqdm's bars: a line before a model
loads, so that no stretch of a run is silent (nothing with --quiet)."""

import sys


def loading(what, path, device, quiet):
    """Say that ``what`` is loading from ``path`` onto ``device`` (a GPU's first use takes seconds)."""
    status(f"loading {what} from {path} on {device}", quiet)


def status(line, quiet):
    """``line`` on stderr, at once, unless --quiet."""
    if not quiet:
        print(line, file=sys.stderr, flush=True)
