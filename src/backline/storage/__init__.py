"""Object storage: where audio and artwork live, with a SHA-256 for every object.

base.py   the interface, what a stored object is, and the errors
keys.py   object keys: made by the server, never from a user's file name
local.py  a directory on this machine (the development default)
s3.py     any S3-compatible store: AWS S3, Cloudflare R2, MinIO
"""

from __future__ import annotations

from backline.config import Settings
from backline.storage.base import Storage


def create_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        from backline.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from backline.storage.local import LocalStorage

    return LocalStorage(settings.effective_storage_dir)
