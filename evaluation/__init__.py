"""Evaluation of lip-sync results: LSE-D / LSE-C (SyncNet), FID, and test-set generation."""
