"""The anchor lab: the anchor overlay and its settings, statistics, inspector and design panels."""
