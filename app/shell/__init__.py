"""The main window: it builds every feature, wires them through the app state, and owns menus and layout."""
