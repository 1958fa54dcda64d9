"""What a run says while it works, so that no stretch of it is silent: a line as each network
starts loading, and tqdm's bars with their totals (all of it off with --quiet)."""

import sys

from tqdm import tqdm


def loading(what, path, shown=True):
    """Say on stderr, at once, that ``what`` is loading from ``path`` (a large file, PyTorch's
    first import, a GPU's first use: seconds)."""
    if shown:
        print(f"loading {what} from {path}", file=sys.stderr, flush=True)


def frame_bar(desc, total, shown=True):
    """A bar counting frames against ``total``."""
    return tqdm(total=total, unit="frame", desc=desc, disable=not shown, dynamic_ncols=True)
