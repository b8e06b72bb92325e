"""verify: prove local files (or migrated copies) equal what a remote holds, from content hashes.

    scan(root, kinds, cache=HashCache(...))      -> ScanResult of LocalFile (hashes + zero facts)
    choose_hash(provider.hash_types)             -> the HashType to compute locally
    classify_tree(files, entries, now=...)       -> [Finding], one status each (rules in classify.py)
    classify_copy(source, dest)                  -> Finding from provenance, downloading nothing
    summarize / format_summary / write_jsonl / write_csv / write_html / write_manifest   (report.py)
    compare.compare_local / compare_remotes   a whole tree, streamed: merge.py walks both sides folder by
                                 folder in sorted path order, listing.py lists ahead, scan.Scanner hashes
                                 in a bounded window, sink.FindingSink counts and spills every finding

The functions `scan.scan` and `classify.classify` are not re-exported here: they would shadow their
own modules as attributes of this package.
"""

from driveferry.verify.cache import HashCache, ZeroFacts, default_cache_path
from driveferry.verify.classify import (
    STATUS_INFO,
    Finding,
    Policy,
    Status,
    classify_copy,
    classify_tree,
    pair,
)
from driveferry.verify.report import (
    Summary,
    format_summary,
    summarize,
    write_csv,
    write_html,
    write_jsonl,
    write_manifest,
)
from driveferry.verify.scan import LocalFile, ScanResult, choose_hash

__all__ = ["HashCache", "ZeroFacts", "default_cache_path", "STATUS_INFO", "Finding", "Policy", "Status",
           "classify_copy", "classify_tree", "pair", "Summary", "format_summary", "summarize",
           "write_csv", "write_html", "write_jsonl", "write_manifest", "LocalFile", "ScanResult",
           "choose_hash"]
