"""The inference pipeline's bars, with their totals (off with --quiet); its lines as each
network starts loading are system.progress's."""

from tqdm import tqdm


def frame_bar(desc, total, shown=True, unit="frame"):
    """A bar counting frames (or other ``unit``s) against ``total``."""
    return tqdm(total=total, unit=unit, desc=desc, disable=not shown, dynamic_ncols=True)
