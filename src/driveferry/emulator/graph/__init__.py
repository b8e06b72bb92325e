"""The Microsoft Graph v1.0 (OneDrive for Business) half of the emulator.

items.py (driveItem record; name, id and time rules), models.py (the drive: items, quota, change
tracking; the Python seeding API), rules.py (realism rules the model applies when a profile asks),
sessions.py (upload sessions), render.py (driveItem JSON and pre-authenticated download URLs), errors.py
(Graph's error body), routes.py (HTTP: `GraphApi`), control.py (`/_emulator/graph/...`).
"""
