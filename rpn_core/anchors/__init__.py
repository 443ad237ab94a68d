"""Anchors: the grid, IoU labelling, explanations of labels, what the overlay shows, k-means design."""
