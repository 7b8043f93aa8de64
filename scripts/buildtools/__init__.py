"""Build and deploy steps: Lambda-ready bytecode, the API's version hash, the Python 3.13 finder."""
