"""Runnable examples of helppet_recordings: the FastAPI adapter and the demo."""
