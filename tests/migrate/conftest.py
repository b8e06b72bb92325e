"""Fixtures for end-to-end migrations (helpers live in world.py)."""

from world import world  # noqa: F401  (the fixture)
