"""What every part stands on: errors, whole-file writes, processes, devices, the command line,
sharding. Importing it (every project module does, first thing) puts the start-up signal
handlers in place (see startup.py)."""

from system import startup  # noqa: F401 - for its handlers
