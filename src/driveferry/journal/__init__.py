"""The transfer journal: what to copy, what is done, and where each in-flight upload stands.

    with Journal.open("~/.driveferry/journal.db") as journal:       # or "postgresql://user@host/db"
        job = journal.get_or_create_job(source_spec, dest_spec)
        journal.plan_items(job.id, (PlannedItem.from_entry(e) for e in walk(source)))
        for item in journal.claim(job.id, worker_id, lease_s=300, limit=4): ...

migrate writes it; verify, status and workers read it. It imports only `driveferry.errors`.
"""

from driveferry.journal.records import (
    FINAL_STATES,
    Completion,
    EntryLike,
    ErrorRecord,
    ItemRecord,
    ItemState,
    JobRecord,
    LeaseLostError,
    PlannedItem,
    PlanResult,
    RunRecord,
    StateTotal,
    UploadUsage,
    WorkerRecord,
)
from driveferry.journal.schema import SCHEMA_VERSION
from driveferry.journal.store import Journal

__all__ = [
    "FINAL_STATES",
    "SCHEMA_VERSION",
    "Completion",
    "EntryLike",
    "ErrorRecord",
    "ItemRecord",
    "ItemState",
    "JobRecord",
    "Journal",
    "LeaseLostError",
    "PlanResult",
    "PlannedItem",
    "RunRecord",
    "StateTotal",
    "UploadUsage",
    "WorkerRecord",
]
