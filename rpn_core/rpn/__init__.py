"""The Region Proposal Network: its configuration, backbone, modules, weights, checkpoints and
proposals."""
