"""The LSE scoring scripts (calculate_scores_LRS.py, calculate_scores_real_videos.py); the flags
they share and their checks are command_line.py, the run both make is scoring.py."""
