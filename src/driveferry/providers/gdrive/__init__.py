"""Google Drive provider.

Config section keys (`[remotes.NAME]` with `type = "gdrive"`), all optional except the credentials:

- credentials: see `auth.py` (`auth`, client_id/client_secret/refresh_token/token_uri, token_file,
  service_account_file/service_account_info/subject, access_token, scopes);
- `drive_id`: a shared drive (its root folder becomes the root unless `root_folder_id` is given);
- `root_folder_id`: start from this folder id instead of My Drive's root;
- `root` (or `root_path`): a folder path below that; `create_root = true` makes it if missing;
- `use_trash` (default true): delete moves to the trash rather than deleting permanently;
- `download_chunk_bytes` (default 16 MiB), `timeout_s` (60), `retry_attempts` (8),
  `daily_upload_cap_bytes` (750 GB; 0 means none);
- emulator: `endpoint` (base URL, e.g. https://127.0.0.1:8443) and `ca_file` (its CA, PEM).
"""

from driveferry.providers.gdrive.provider import GDriveProvider, from_remote_config

__all__ = ["GDriveProvider", "from_remote_config"]
