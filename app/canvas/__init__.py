"""The annotation canvas: the view, the GT box items, the tag layer and the one z-order."""
