"""A package that only the layer folder provides."""

MARKER = "from-layer"
