"""Worked examples of wildproof on built-in data. Each is a package written the way a user's own project would be:
its data, its feature module, its model spec, and a job that uses only wildproof's public API."""
