"""A function package whose handler module cannot be imported."""
