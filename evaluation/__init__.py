"""Evaluation of lip-sync results. The runnable scripts live here and in scores_LSE/ (run them
by path, as the reference's); what they compute lives in metrics/. Test-set generation, which
drives the inference pipeline, is generation.py, and the generation scripts' flags (built from
inference.py's) are command_line.py; the run both LSE scripts make is scores_LSE/scoring.py,
their flags scores_LSE/command_line.py. What the scripts say while they work: system/progress.py."""
