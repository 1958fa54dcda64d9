"""Dubbing: text or subtitles -> synthesised speech -> a lip-synced video (see dub.py)."""
