"""Sharing: source permissions mapped to Drive grants that are never wider (issue #18)."""
