"""Media files: reading and writing video and audio (containers), exact colour (yuv), synthetic-media marks (provenance)."""
