"""Annotations: the data model, the document and its edits, folders as datasets, the file formats."""
