"""driveferry: move and verify files between cloud drives, resumably, with end-to-end hashes."""

__version__ = "0.1.0"
