"""Annotating: the session (images, loading, saving), the file, box and class panels, edit intents."""
