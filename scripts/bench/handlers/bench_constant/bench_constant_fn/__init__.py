"""The runtime floor of the API benchmark: a handler that imports nothing."""
