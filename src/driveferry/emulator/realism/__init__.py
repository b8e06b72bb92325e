"""Realism: behaviours of the real services that break migrations, applied when a profile enables them.

The emulator is kinder than the clouds by default. A profile (`driveferry emulator serve --profile FILE`,
`Emulator(..., realism=Realism.load(path))`, or `PUT /_emulator/realism`) turns on, each on its own:
per-user rate limits (Drive 403 rateLimitExceeded without Retry-After; Graph 429 with a long
Retry-After), Graph throttling episodes and storms, Drive search lag, appProperties private to their
OAuth client, SharePoint rewriting Office files, transient fragment 404s, Business ignoring fileSize,
and a scaled clock. Sources are cited where each is implemented.

    settings.py  the frozen settings and their TOML/JSON parsing
    limits.py    token buckets and refusal windows on the emulated clock
    hook.py      Realism: the per-request hook, the model wiring, counters, storms
    control.py   /_emulator/realism routes
"""

from driveferry.emulator.realism.hook import Realism
from driveferry.emulator.realism.settings import Settings

__all__ = ["Realism", "Settings"]
