"""Object storage: where audio and artwork live, with a SHA-256 for every object.

base.py    the interface, what a stored object is, and the errors
keys.py    object keys: made by the server, never from a user's file name
local.py   a directory on this machine (the development default)
s3.py      any S3-compatible store: AWS S3, Cloudflare R2, MinIO
verify.py  `backline storage verify`: re-hash every object against its record
migrate.py `backline storage migrate --to s3`: move objects between backends

A row names the backend holding each of its objects, so a deployment may hold objects in more
than one while they are being moved: `Storages` is every backend this deployment can reach, and
its `primary` (BACKLINE_STORAGE_BACKEND) takes every new object.
"""

from __future__ import annotations

from backline.config import Settings
from backline.storage.base import Storage, StorageUnavailable


class Storages:
    def __init__(self, primary: Storage, *others: Storage) -> None:
        self.primary = primary
        self._by_name = {storage.name: storage for storage in (*others, primary)}

    def __getitem__(self, name: str | None) -> Storage:
        """The backend called `name`; None (an object recorded before backends were) is the
        primary."""
        if name is None:
            return self.primary
        try:
            return self._by_name[name]
        except KeyError:
            raise StorageUnavailable(
                f"An object is held by the {name} backend, which is not configured."
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name


def create_storages(settings: Settings) -> Storages:
    from backline.storage.local import LocalStorage

    local = LocalStorage(settings.effective_storage_dir)
    s3 = None
    if settings.s3_bucket:
        from backline.storage.s3 import S3Storage

        s3 = S3Storage.from_settings(settings)
    if settings.storage_backend == "s3":
        assert s3 is not None  # the settings refuse s3 without a bucket
        return Storages(s3, local)
    return Storages(local, *([s3] if s3 is not None else []))
