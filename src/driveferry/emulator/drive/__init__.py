"""The Google Drive v3 half of the emulator.

Layout (moto's split: state and rules apart from HTTP and from wire errors):

    records.py  the stored file row, its File resource rendering, property limits, ids and times
    models.py   DriveModel: files and folders with Drive's rules; the Python API seeding and tests use
    quotas.py   the per-user rolling daily upload cap and the storage quota
    uploads.py  resumable upload sessions (persisted; survive a restart)
    hashing.py  md5/sha1/sha256 computed in parallel lanes while content streams in
    query.py    the `q` language;  fields.py  partial responses (`fields`)
    errors.py   DriveError and Google's error JSON
    media.py    HTTP for downloads, export and the upload protocols
    routes.py   DriveApi: the route table, metadata handlers and /_emulator/drive/* control routes
"""
