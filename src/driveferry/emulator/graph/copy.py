"""driveItem copy as Graph runs it: asynchronously, reported through a monitor URL.

`POST .../items/{id}/copy` answers 202 Accepted with a monitor URL in `Location`; the copy is made in
the background, and a GET on the monitor (no Authorization, as on Graph) reports an asyncJobStatus:
`{"operation": "ItemCopy", "status": "inProgress" | "completed" | "failed", "percentageComplete": ...,
"resourceId": "<new item id>"}` (learn.microsoft.com/graph/api/driveitem-copy and
learn.microsoft.com/graph/long-running-actions-overview). What is checked up front, before the 202:
the source exists, the destination parent is a folder of this drive, the name is legal, the copy fits
the quota, a folder is not copied into itself, and the name is free unless the query sets
`@microsoft.graph.conflictBehavior=rename` (or `replace`, files only): otherwise 409 nameAlreadyExists.

Emulator choices where Graph is unconfirmed: the first poll of a monitor always reports `inProgress`
(so a client that assumes instant completion is caught), a finished job answers 200 and a running
one 202; the copy keeps the source's fileSystemInfo times; monitors live in memory (a restarted
emulator forgets them, answering 404 itemNotFound).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from driveferry.emulator.graph.errors import GraphError, InvalidRequest, ItemNotFound, NameAlreadyExists
from driveferry.emulator.graph.models import GraphModel, Item, check_name
from driveferry.integrity.hashes import QuickXor

_BLOCK = 1 << 20
COPY_CONFLICTS = ("fail", "rename", "replace")


@dataclass
class CopyJob:
    """One copy in progress or done; fields change under CopyJobs' lock."""

    id: str
    total_bytes: int
    status: str = "inProgress"
    done_bytes: int = 0
    resource_id: str | None = None
    error: GraphError | None = None
    polls: int = 0


class CopyJobs:
    """Start copies and report on them (thread-safe)."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        self._jobs: dict[str, CopyJob] = {}
        self._lock = threading.Lock()

    def start(self, source_id: str, parent_id: str | None, name: str | None, conflict: str = "fail") -> CopyJob:
        """Validate the copy and run it in the background; GraphError for what fails up front."""
        if conflict not in COPY_CONFLICTS:
            raise InvalidRequest(f"Invalid conflictBehavior {conflict!r}")
        source = self.model.get(source_id)
        if source.kind == "root":
            raise InvalidRequest("The root folder cannot be copied.")
        parent = self.model.get(parent_id) if parent_id is not None else self.model.get(source.parent_id or "")
        if not parent.is_folder:
            raise InvalidRequest("The destination is not a folder.", "invalidParent")
        final = check_name(name if name is not None else source.name)
        if source.is_folder and parent.id in self.model.descendant_ids(source.id):
            raise InvalidRequest("A folder cannot be copied into itself.", "invalidParent")
        existing = self.model.child(parent.id, final)
        if existing is not None and (conflict == "fail" or (conflict == "replace" and
                                                            (source.is_folder or existing.kind != "file"))):
            raise NameAlreadyExists("The specified item name already exists.")
        size = self.model.folder_size(source.id) if source.is_folder else source.size
        self.model.check_quota(size)
        job = CopyJob(secrets.token_hex(16), size)
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, source, parent.id, final, conflict),
                         name=f"graph-copy-{job.id[:8]}", daemon=True).start()
        return job

    def status(self, job_id: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, asyncJobStatus body) of a monitor; ItemNotFound for an unknown one."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ItemNotFound("The copy operation was not found.")
            job.polls += 1
            status = job.status if job.polls > 1 else "inProgress"
            if status == "completed":
                pct = 100.0
            else:  # in progress never says 100 (the job may be done but not yet reported)
                pct = min(99.9, round(100.0 * job.done_bytes / job.total_bytes, 1)) if job.total_bytes else 0.0
            body: dict[str, Any] = {"operation": "ItemCopy", "status": status, "percentageComplete": pct}
            if status == "completed":
                body["resourceId"] = job.resource_id
            if status == "failed" and job.error is not None:
                body["errorCode"] = job.error.inner or job.error.code
                body["statusDescription"] = job.error.message
        return (200 if status in ("completed", "failed") else 202), body

    def _run(self, job: CopyJob, source: Item, parent_id: str, name: str, conflict: str) -> None:
        try:
            copied = self._copy(job, source, parent_id, name, conflict)
        except GraphError as err:
            with self._lock:
                job.status, job.error = "failed", err
            return
        except Exception as exc:  # noqa: BLE001 - a failed copy is reported on its monitor, not raised
            with self._lock:
                job.status, job.error = "failed", GraphError(f"The copy failed: {exc}", code="generalException")
            return
        with self._lock:
            job.status, job.resource_id = "completed", copied.id

    def _copy(self, job: CopyJob, source: Item, parent_id: str, name: str, conflict: str) -> Item:
        if source.kind == "file":
            return self._copy_file(job, source, parent_id, name, conflict)
        if source.kind == "package":
            return self.model.create_package(parent_id, name, source.package_type or "oneNote")
        folder, _ = self.model.create_folder(parent_id, name, "rename" if conflict == "rename" else "fail",
                                             fs_created=source.fs_created, fs_modified=source.fs_modified)
        for child in self.model.children(source.id, limit=1 << 30):
            self._copy(job, child, folder.id, child.name, "fail")
        return folder

    def _copy_file(self, job: CopyJob, source: Item, parent_id: str, name: str, conflict: str) -> Item:
        blob = self.model.state.new_blob_path()
        qx = QuickXor()
        try:
            with open(blob, "wb") as out:
                for data in self._read(source):
                    out.write(data)
                    qx.update(data)
                    with self._lock:
                        job.done_bytes += len(data)
            return self.model.commit_content(parent_id, name, conflict, blob.name, source.size, qx,
                                             source.fs_created, source.fs_modified)
        except BaseException:
            blob.unlink(missing_ok=True)
            raise

    def _read(self, item: Item) -> Iterator[bytes]:
        path = self.model.content_path(item)
        if path is None:
            return
        with open(path, "rb") as fh:
            while data := fh.read(_BLOCK):
                yield data
