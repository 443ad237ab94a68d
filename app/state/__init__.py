"""The app's shared state: the annotation document, its undo commands and the app state object."""
