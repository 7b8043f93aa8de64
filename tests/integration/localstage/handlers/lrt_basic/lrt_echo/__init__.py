"""Test handlers for the local Lambda runtime."""
