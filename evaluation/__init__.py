"""Evaluation of lip-sync results. The runnable scripts live here and in scores_LSE/ (run them
by path, as the reference's); what they compute lives in metrics/, and test-set generation
drives the inference pipeline through lipsync.batch."""
