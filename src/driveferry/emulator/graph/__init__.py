"""The Microsoft Graph v1.0 (OneDrive for Business) half of the emulator.

models.py (drive items and rules), sessions.py (upload sessions), render.py (driveItem JSON, download
URLs), errors.py (Graph's error body), routes.py (HTTP: `GraphApi`), control.py (/_emulator/graph/...).
"""
