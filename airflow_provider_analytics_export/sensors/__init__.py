"""Sensors that wait on asynchronous export jobs."""
