"""One storage layer for what the orchestration side reads and writes: report outputs, the e-mail
ledger, the cache-miss outputs and the date locks.

A `Store` is a folder (local directory or S3 prefix) of objects addressed by relative keys
(`2024-06-09/cdn_report.pdf`). Besides plain reads and writes it offers the two conditional
writes the ledger and the locks are built on:

- `create(key, data)`: put if absent (S3 `If-None-Match: *`; locally a hard link, which fails if
  the name exists), so of two runs exactly one creates the object;
- `replace(key, data, version)`: put only if the object is still at `version` (S3 `If-Match` on
  the ETag; locally under an flock, comparing a content hash).

Versions are opaque strings: an S3 ETag (the MD5 of the content on a single-part put) or the
local SHA-256. Two writes of equal bytes have equal versions, so callers that compare-and-swap put
a fresh nonce in every payload. Nothing deletes conditionally: S3-compatible stores that ignore
`If-Match` on DELETE would let a run delete what another one just wrote; the locks mark "released"
with a conditional put instead.

`store_for(location, settings)` is the only place that decides between the two by the location's
scheme; everything else receives a Store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

S3_SCHEMES = ("s3://", "s3a://")
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
_MISSING = ("NoSuchKey", "404", "NotFound")


class Conflict(RuntimeError):
    """A conditional write lost: the object exists (create) or changed (replace)."""


def is_s3(location: str) -> bool:
    return location.startswith(S3_SCHEMES)


class Store(Protocol):
    location: str

    def uri(self, key: str) -> str: ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str] | None: ...

    def write(self, key: str, data: bytes) -> str:
        """Put unconditionally (atomically: a reader sees the old or the new bytes); the version."""
        ...

    def create(self, key: str, data: bytes) -> str:
        """Put if absent; the version, or Conflict when the object exists."""
        ...

    def replace(self, key: str, data: bytes, version: str) -> str:
        """Put if the object is at `version`; the new version, or Conflict."""
        ...

    def exists(self, key: str) -> bool: ...

    def age(self, key: str) -> float | None:
        """Seconds since the object was last written, by the store's own clock (None if unknown)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""
        ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """A directory. Writes go through a temporary file in the same folder, then a rename or link."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(str(root).removeprefix("file://"))
        self.location = str(self.root)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store {self.location}")
        return path

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        data = self.read(key)
        return None if data is None else (data, _digest(data))

    def _staged(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs stay readable like the rest
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return tmp

    def write(self, key: str, data: bytes) -> str:
        path = self.path(key)
        tmp = self._staged(path, data)
        os.replace(tmp, path)
        return _digest(data)

    def create(self, key: str, data: bytes) -> str:
        path = self.path(key)
        tmp = self._staged(path, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists: the local If-None-Match
        except FileExistsError:
            raise Conflict(f"{path} exists") from None
        finally:
            os.unlink(tmp)
        return _digest(data)

    @contextlib.contextmanager
    def _guard(self, path: Path) -> Iterator[None]:
        guard = path.with_name(f".{path.name}.guard")
        fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def replace(self, key: str, data: bytes, version: str) -> str:
        path = self.path(key)
        if not path.parent.is_dir():
            raise Conflict(f"{path} does not exist")
        with self._guard(path):
            current = self.read_versioned(key)
            if current is None or current[1] != version:
                raise Conflict(f"{path} changed")
            return self.write(key, data)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def age(self, key: str) -> float | None:
        try:
            return time.time() - self.path(key).stat().st_mtime  # one host: one clock
        except FileNotFoundError:
            return None

    def list(self, prefix: str = "") -> list[str]:
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))  # fmt: skip


def _code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


class S3Store:
    """A prefix of an S3 bucket (AWS, or CDNLAKE_S3_ENDPOINT: MinIO, LocalStack, moto)."""

    def __init__(self, client: Any, location: str) -> None:
        bucket, _, prefix = location.split("://", 1)[1].partition("/")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def key(self, key: str) -> str:
        return "/".join(p for p in (self.prefix, key.strip("/")) if p)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.key(key)}"

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return response["Body"].read(), str(response["ETag"])

    def read(self, key: str) -> bytes | None:
        found = self.read_versioned(key)
        return None if found is None else found[0]

    def _put(self, key: str, data: bytes, **condition: str) -> str:
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, **condition)
        except Exception as exc:
            if _code(exc) in _CONFLICT or (condition.get("IfMatch") and _code(exc) in _MISSING):
                raise Conflict(f"{self.uri(key)}: {_code(exc)}") from None
            raise
        return str(response["ETag"])

    def write(self, key: str, data: bytes) -> str:
        return self._put(key, data)

    def create(self, key: str, data: bytes) -> str:
        return self._put(key, data, IfNoneMatch="*")

    def replace(self, key: str, data: bytes, version: str) -> str:
        return self._put(key, data, IfMatch=version)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    def age(self, key: str) -> float | None:
        """Both ends from the store: its `Date` header minus the object's Last-Modified. Neither
        this host's clock nor the writer's enters, so hosts whose clocks disagree judge alike."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date or response.get("LastModified") is None:
            return None
        return (parsedate_to_datetime(date) - response["LastModified"]).total_seconds()

    def list(self, prefix: str = "") -> list[str]:
        start = self.key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            keys += [obj["Key"][strip:] for obj in page.get("Contents", [])]
        return sorted(keys)


def store_for(location: str, s3_client_factory: Any = None) -> Store:
    """The store of a location: S3 for s3:// and s3a://, else a local directory.

    `s3_client_factory()` gives the S3 client (cdnlake/integrations/aws.py builds it from the settings, so the
    endpoint is CDNLAKE_S3_ENDPOINT when set); it is only called for an S3 location.
    """
    if is_s3(location):
        if s3_client_factory is None:
            raise ValueError(f"an S3 client is needed for {location}")
        return S3Store(s3_client_factory(), location)
    return LocalStore(location)


__all__ = ["Conflict", "LocalStore", "S3Store", "Store", "is_s3", "store_for"]
