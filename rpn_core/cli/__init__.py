"""The headless command line ``rpn-studio convert | propose | eval | train | anchors``; one module per command."""
