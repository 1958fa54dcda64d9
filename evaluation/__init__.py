"""Evaluation of lip-sync results. The runnable scripts live here and in scores_LSE/ (run them
by path, as the reference's); what they compute lives in metrics/. Test-set generation, which
drives the inference pipeline, is generation.py, and the generation scripts' flags (built from
inference.py's) are command_line.py; the run both LSE scripts make is scores_LSE/scoring.py,
their flags scores_LSE/command_line.py. Below: what every script says while it works, beside
tqdm's bars, so that no stretch of a run is silent (nothing with --quiet)."""

import sys


def loading(what, path, device, quiet):
    """Say that ``what`` is loading from ``path`` onto ``device`` (a GPU's first use takes seconds)."""
    status(f"loading {what} from {path} on {device}", quiet)


def status(line, quiet):
    """``line`` on stderr, at once, unless --quiet."""
    if not quiet:
        print(line, file=sys.stderr, flush=True)
