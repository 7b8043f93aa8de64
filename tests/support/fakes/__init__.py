"""Type-checked test doubles of the project's ports, shared by unit tests."""
