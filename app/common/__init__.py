"""Infrastructure every part of the GUI may use: settings, background workers, icons, the message bar."""
