"""Test functions behind the local API Gateway front and the scheduler."""
