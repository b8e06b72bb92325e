"""One migration run: open the journal, plan the source into it, run the workers, summarise.

The same command run again (on the same or another machine sharing the journal) finds the same job,
re-plans incrementally (unchanged finished files stay finished) and continues every unfinished file
from its committed offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driveferry.journal.store import Journal

from driveferry.errors import DriveferryError, UserError
from driveferry.integrity.hashes import HashType
from driveferry.migrate.destination import Destination, settled_mkdir
from driveferry.migrate.export import MigrationRelay
from driveferry.migrate.journal_port import JobPort
from driveferry.migrate.names import Namer
from driveferry.migrate.plan import Filters, Naming, Planned, plan, plan_changes
from driveferry.migrate.port import FolderLedger
from driveferry.migrate.quota import QuotaStop, UploadBudget, Usage, quota_wait_s
from driveferry.migrate.settings import MigrateSettings
from driveferry.migrate.versions import VersionsRelay, previous_versions
from driveferry.migrate.workers import Progress, Tally, Workers, WorkerSettings
from driveferry.providers.base import Entry, Kind, Provider

log = logging.getLogger(__name__)


@dataclass
class Summary:
    run_id: str
    copied: int = 0
    skipped: int = 0
    unverified: int = 0  # of `copied`: committed, but no content hash agreed on each side
    failed: int = 0
    unsupported: int = 0
    filtered: int = 0
    planned: int = 0
    bytes_uploaded: int = 0
    resumed: int = 0
    seconds: float = 0.0
    incremental: bool = False  # planned from the source's change listing, not a full walk
    stopped_for_quota: str | None = None
    resets_at: str | None = None
    quota_waits: int = 0  # --wait-for-quota: times the run waited for the daily cap, and for how long
    quota_waited_s: float = 0.0
    dry_run: bool = False
    would_copy_bytes: int = 0  # --dry-run: the size of the `copied` files it would copy
    failures: list[dict[str, str]] = field(default_factory=list)
    unsupported_items: list[dict[str, str]] = field(default_factory=list)
    renamed: int = 0  # planned under another name than the source's (migrate/names.py)
    renamed_items: list[dict[str, str]] = field(default_factory=list)
    exported: int = 0  # native documents copied as their export (migrate/export.py)
    exported_items: list[dict[str, Any]] = field(default_factory=list)
    altered: int = 0  # copies the destination rewrote as it stored them (migrate/altered.py); unverified
    # --versions: files whose previous versions were copied as revisions, how many versions, their bytes
    # (with --dry-run: what the plan's copies would add, before anything starts)
    version_files: int = 0
    versions_copied: int = 0
    version_bytes: int = 0
    altered_items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate_bps(self) -> float:
        return self.bytes_uploaded / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["rate_bytes_per_s"] = round(self.rate_bps, 1)
        return out


DELTA_KEY = "source_delta_cursor"


def _source_plan(src: Provider, root: Entry, filters: Filters, port: JobPort, naming: Naming
                 ) -> tuple[Iterator[Planned] | None, str | None]:
    """(planned changes, cursor to store) from the source's delta listing, or (None, cursor) when a full
    walk is needed. Without delta support: (None, None).

    A cursor is taken before a full walk, so changes made during the walk show up next time. The
    cursor of the previous finished run (stored with its summary) lists only what changed since; any
    trouble with it falls back to the full walk, which is always correct.
    """
    lister = src.features.delta
    if lister is None:
        return None, None
    previous = port.previous_value(DELTA_KEY)
    if previous:
        try:
            changes, cursor = lister.delta(previous)
            return plan_changes(changes, root, filters, naming), cursor
        except DriveferryError as exc:
            log.info("delta listing failed (%s); walking the whole source", exc)
    try:
        return None, lister.latest_cursor()
    except DriveferryError as exc:
        log.info("no delta cursor (%s); the next run walks the whole source again", exc)
        return None, None


class PlanProgress(Progress):
    def planned(self, count: int) -> None: ...

    def remaining(self, files: int, nbytes: int) -> None:
        """Called once after planning: what this run still has to send."""

    def quota_wait(self, reason: str, wait_s: float) -> None:
        """Called before the run sleeps `wait_s` wall seconds for the daily cap (--wait-for-quota)."""

    def would_copy(self, path: str, size: int) -> None:
        """--dry-run: called for each file the run would copy (its destination path and size)."""

    def close(self) -> None:
        """Called once when the run ends (also after an error): flush what is shown."""


def _resolve_root(provider: Provider, path: str, create: bool, ledger: FolderLedger | None = None) -> Entry:
    """The folder at `path`. With `create`, missing folders are made; with a ledger, folders are taken
    from it first and recorded in it, so workers starting together agree on one (see settled_mkdir)."""
    from driveferry.errors import NotFoundError
    if create and ledger is not None and path.strip("/"):
        entry = provider.root()
        for part in [p for p in path.strip("/").split("/") if p]:
            entry = settled_mkdir(provider, entry, part, ledger)
        return entry
    try:
        entry = provider.stat(path)
    except NotFoundError:
        if not create:
            raise UserError(f"source path {path!r} does not exist on {provider.name}; check it with "
                            f"'driveferry ls'") from None
        entry = provider.root()
        for part in [p for p in path.strip("/").split("/") if p]:
            entry = settled_mkdir(provider, entry, part)
        return entry
    if create and entry.kind is not Kind.FOLDER:
        raise UserError(f"destination {path!r} on {provider.name} is a file, not a folder; "
                        "give a folder path")
    return entry


def preflight(src: Provider, src_path: str, dst: Provider, dst_path: str) -> Entry:
    """Check both ends before anything is written (journal, folders): signs in to both, the source
    must exist, the destination must be a folder or absent. Returns the source root entry.
    Raises UserError, ProviderError (e.g. rejected credentials)."""
    from driveferry.errors import NotFoundError
    src_root = _resolve_root(src, src_path, create=False)
    try:
        entry = dst.stat(dst_path)
    except NotFoundError:
        return src_root
    if entry.kind is not Kind.FOLDER:
        raise UserError(f"destination {dst_path!r} on {dst.name} is a file, not a folder; give a folder path")
    return src_root


def run_migration(settings: MigrateSettings, src: Provider, src_path: str, dst: Provider, dst_path: str,
                  journal: Journal | None, progress: PlanProgress, daily_cap: int | None, *,
                  hashes: frozenset[HashType] = frozenset(), checked_root: Entry | None = None) -> Summary:
    """Plan and transfer. Returns the summary; quota stops are reported in it, not raised.

    `hashes`: streamed for every file on top of what each copy's proof needs (`migrate --hashes`).
    `checked_root`: the source root a `preflight` of the caller just returned, so both ends are not
    asked again (each check is a round trip or two: ~0.1-0.3 s on the real clouds).

    With settings.dry_run nothing is written anywhere: the plan is compared with the journal (None
    when there is none yet) and the copies it would make are counted.
    """
    started = time.monotonic()
    src_root = checked_root if checked_root is not None else preflight(src, src_path, dst, dst_path)
    filters = Filters(settings.include, settings.exclude, settings.min_size, settings.max_size)
    naming = Naming(Namer(dst.features, dst_path), settings.export, src)
    if settings.dry_run:
        planned = plan(src, src_root, filters, naming, checkers=settings.checkers)
        dry = Summary(run_id="dry-run", dry_run=True)
        if settings.versions:
            planned = _history_cost(planned, src, settings.versions, dry)
        return _dry_run(journal, settings, _counted(planned, dry), started,
                        progress)
    assert journal is not None
    port = JobPort.open(journal, settings, src_root.path)
    run_id = port.run_id
    summary = Summary(run_id=run_id, dry_run=settings.dry_run)

    def stream(source: Iterator[Planned]) -> Any:
        for item in source:
            summary.planned += 1
            if summary.planned % 200 == 0:
                progress.planned(summary.planned)
            if item.action == "unsupported":
                summary.unsupported += 1
                summary.unsupported_items.append({"path": item.rel_path, "reason": item.reason})
            elif item.action == "filtered":
                summary.filtered += 1
            _count_renamed(summary, item)
            yield item

    source_items, cursor = _source_plan(src, src_root, filters, port, naming)
    summary.incremental = cursor is not None and source_items is not None
    if source_items is None:
        source_items = plan(src, src_root, filters, naming, checkers=settings.checkers)
    items: Any = stream(source_items)
    port.plan(items)
    progress.planned(summary.planned)
    progress.remaining(*port.remaining())
    dst_root = _resolve_root(dst, dst_path, create=True, ledger=port)
    user_key = f"{dst.name}:{dst_root.id}" if daily_cap is None else f"{dst.name}"
    budget = UploadBudget(
        usage=lambda since: Usage(*port.uploaded_since(user_key, since)),
        record=lambda n, at: port.record_upload(user_key, n, at),
        now=lambda: datetime.now(UTC), limit_bytes=daily_cap, max_transfer_bytes=settings.max_transfer)
    relay = VersionsRelay(src, dst, settings.versions, hashes) if settings.versions else MigrationRelay(src, dst, hashes)
    if isinstance(relay, VersionsRelay):
        relay.budget = budget  # each version is admitted like a file, and its bytes count as they go
    dest = Destination(dst, dst_root, port, source=src)
    worker_settings = WorkerSettings(settings.transfers, settings.chunk_size, settings.lease_s, run_id,
                                     settings.worker_id)
    stop: QuotaStop | None = None
    try:
        while True:
            workers = Workers(port, relay, dest, budget, worker_settings, progress)
            tally = workers.run()
            _add(summary, tally)
            stop = workers.quota_stop
            if stop is None or not (settings.wait_for_quota and stop.waitable):
                break
            budget.flush()
            waited_s = _wait_for_quota(stop, budget, _time_scale(dst), progress)
            summary.quota_waits += 1
            summary.quota_waited_s = round(summary.quota_waited_s + waited_s, 3)
    finally:
        budget.flush()
        summary.seconds = time.monotonic() - started
        summary.exported_items = [e.to_json() for e in relay.exports]
        summary.exported = len(summary.exported_items)
        summary.altered_items = [a.to_json() for a in relay.altered]
        summary.altered = len(summary.altered_items)
        if isinstance(relay, VersionsRelay):
            summary.version_files = sum(1 for h in relay.histories if h.versions)
            summary.versions_copied = sum(h.versions for h in relay.histories)
            summary.version_bytes = sum(h.size_bytes for h in relay.histories)
    if stop is not None:
        summary.stopped_for_quota = stop.reason
        summary.resets_at = stop.resets_at.isoformat() if stop.resets_at else None
    port.finish({**summary.to_json(), **({DELTA_KEY: cursor} if cursor else {})})
    return summary


def _history_cost(items: Iterator[Planned], src: Provider, keep: int, summary: Summary) -> Iterator[Planned]:
    """The planned items, while the previous versions each copy would bring along are counted into
    `summary` (one version listing per file to copy)."""
    for item in items:
        if item.action == "copy":
            found = previous_versions(src, item.entry, keep)
            summary.version_files += bool(found)
            summary.versions_copied += len(found)
            summary.version_bytes += sum(v.size for v in found)
        yield item


def _count_renamed(summary: Summary, item: Planned) -> None:
    if item.renamed:
        summary.renamed += 1
        summary.renamed_items.append({"path": item.rel_path, "source": item.entry.path, "why": item.renamed})


def _add(summary: Summary, tally: Tally) -> None:
    summary.copied += tally.copied
    summary.skipped += tally.skipped
    summary.failed += tally.failed
    summary.bytes_uploaded += tally.bytes_uploaded
    summary.resumed += tally.resumed
    summary.unverified += tally.unverified
    summary.failures += [{"path": p, "error": e} for p, e in tally.failures]


def _time_scale(provider: Provider) -> float:
    """How much faster the remote's clock runs (the `time_scale` remote key, read by the retry layer;
    an emulator's scaled clock): quota waits are divided by it like every other wait."""
    policy = getattr(provider, "policy", None)
    return float(getattr(policy, "time_scale", 1.0) or 1.0)


def _wait_for_quota(stop: QuotaStop, budget: UploadBudget, time_scale: float, progress: PlanProgress) -> float:
    """Sleep until the daily budget should have room again (--wait-for-quota) and return the seconds
    slept; the next round of workers then finds out (a file starts, or the destination's cap again)."""
    now = datetime.now(UTC)
    if stop.resets_at is None:  # the destination refused without saying when; our own records may know
        stop = QuotaStop(stop.reason, budget.resets_at(), stop.kind)
    wait_s = quota_wait_s(stop, now, time_scale)
    log.warning("daily upload cap reached (%s); waiting %.0f s before starting more files", stop.reason, wait_s)
    progress.quota_wait(stop.reason, wait_s)
    time.sleep(wait_s)
    return wait_s


class _Counted:
    """Planned items passed through while the summary counts them (for --dry-run)."""

    def __init__(self, items: Iterator[Planned], summary: Summary) -> None:
        self.items = items
        self.summary = summary

    def __iter__(self) -> Iterator[Planned]:
        for item in self.items:
            self.summary.planned += 1
            if item.action == "unsupported":
                self.summary.unsupported += 1
                self.summary.unsupported_items.append({"path": item.rel_path, "reason": item.reason})
            elif item.action == "filtered":
                self.summary.filtered += 1
            _count_renamed(self.summary, item)
            yield item


def _counted(items: Iterator[Planned], summary: Summary) -> _Counted:
    return _Counted(items, summary)


_DRY_RUN_BATCH = 500


def _dry_run(journal: Journal | None, settings: MigrateSettings, items: _Counted, started: float,
             progress: PlanProgress) -> Summary:
    """Count (and list through `progress.would_copy`) what would be copied: planned copies the journal
    does not already hold as finished."""
    from driveferry.journal.records import ItemState
    job = journal.find_job(settings.source, settings.destination) if journal is not None else None
    finished = (ItemState.DONE, ItemState.SKIPPED)
    count = 0
    batch: list[tuple[str, int]] = []
    summary = items.summary

    def flush() -> int:  # one query per batch of paths (Journal.item_states), not one per item
        paths = [path for path, _ in batch]
        states = journal.item_states(job.id, paths) if (journal is not None and job is not None) else {}
        todo = [(path, size) for path, size in batch if states.get(path) not in finished]
        for path, size in todo:
            progress.would_copy(path, size)
            summary.would_copy_bytes += size
        batch.clear()
        return len(todo)

    for item in items:
        if item.action == "copy":
            batch.append((item.rel_path, item.entry.size or 0))
            if len(batch) >= _DRY_RUN_BATCH:
                count += flush()
    count += flush()
    summary.copied = count
    summary.seconds = time.monotonic() - started
    return summary
