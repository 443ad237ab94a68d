"""Reading images (upright RGB, typed errors, size limits) and display-only adjustments."""
