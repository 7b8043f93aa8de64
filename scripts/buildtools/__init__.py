"""Build steps: bytecode Lambda can use (compile_bytecode.py) and the Python 3.13 finder."""
