"""The naive reference of the API benchmark: the common way of writing the same read."""
