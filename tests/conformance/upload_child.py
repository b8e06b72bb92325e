"""Child process of the resume test: start an upload, send some chunks, report, then wait to be killed.

argv[1] is JSON: section, state_dir, parent_path, name, size, chunk, seed, chunks (to send before
stopping). Prints `TOKEN <token>` then `SENT <offset>` (flushed) and sleeps until SIGKILL arrives.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from driveferry.providers.base import UploadMeta
from driveferry.providers.ops import resolve
from driveferry.providers.registry import provider_from_section


def main() -> None:
    args = json.loads(sys.argv[1])
    data = random.Random(args["seed"]).randbytes(args["size"])
    provider = provider_from_section("conformance", args["section"], Path(args["state_dir"]))
    parent = resolve(provider, args["parent_path"])
    session = provider.begin_upload(parent, args["name"], len(data), UploadMeta())
    print("TOKEN", session.token, flush=True)
    offset, chunk = 0, args["chunk"]
    for _ in range(args["chunks"]):
        session.send(offset, data[offset:offset + chunk], False)
        offset += chunk
    print("SENT", offset, flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
