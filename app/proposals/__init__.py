"""The Proposals feature: the dock, its controls, the proposals layer and list."""
