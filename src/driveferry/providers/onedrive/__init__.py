"""OneDrive for Business through Microsoft Graph v1.0: provider, Graph client, uploads, errors, sign-in, names."""

from driveferry.providers.onedrive.provider import OneDriveProvider, from_remote_config

__all__ = ["OneDriveProvider", "from_remote_config"]
