"""Headless sub-commands of ``rpn-studio``; one module per command, see :mod:`rpn_core.cli`."""
