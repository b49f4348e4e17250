"""Data: image files, real dataset formats, builtin procedural data and resumable batch streams."""
