"""Run a notebook's code cells headless, in order, in one namespace, as a Colab kernel would.

Only what needs Colab or IPython itself is stood in for: `google.colab.drive.mount(path)` makes
`path/MyDrive` a plain folder, `google.colab.auth.authenticate_user()` refuses (no Google sign-in
here), and a `!command` line runs in a shell after IPython's `{expression}` expansion from the
namespace (IPython's `system()` records the exit code and does not raise). NAME=JSON_VALUE arguments
are assigned right after the cell tagged `parameters`, as papermill injects them.

    python run_notebook.py NOTEBOOK.ipynb RESULT.json NAME=JSON_VALUE ...

RESULT.json gets [{"cell", "command", "rc", "stdout", "stderr", "seconds"}] for every shell
line; an exception in a cell stops the run (exit 1, traceback on stderr) like a failing cell.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

_BANG = re.compile(r"^(\s*)!(.*)$")
_FIELD = re.compile(r"\{([^{}]+)\}")


def _colab_stub() -> None:
    colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")
    auth = types.ModuleType("google.colab.auth")

    def mount(path: str, force_remount: bool = False) -> None:
        (Path(path) / "MyDrive").mkdir(parents=True, exist_ok=True)
        print(f"Mounted at {path}")

    def authenticate_user() -> None:
        raise RuntimeError("google.colab.auth needs Colab itself; the headless run uses a prepared CONFIG_FILE")

    drive.mount = mount  # type: ignore[attr-defined]
    auth.authenticate_user = authenticate_user  # type: ignore[attr-defined]
    colab.drive, colab.auth = drive, auth  # type: ignore[attr-defined]
    sys.modules.update({"google.colab": colab, "google.colab.drive": drive, "google.colab.auth": auth})


def _translate(source: str) -> str:
    """IPython's `!cmd` lines as calls of __shell__ (indentation kept, so they work inside blocks)."""
    return "\n".join(f"{m.group(1)}__shell__({m.group(2)!r})" if (m := _BANG.match(line)) else line
                     for line in source.splitlines())


def main(argv: list[str]) -> int:
    notebook, result = Path(argv[0]), Path(argv[1])
    overrides = {k: json.loads(v) for k, v in (a.split("=", 1) for a in argv[2:])}
    _colab_stub()
    records: list[dict[str, Any]] = []
    ns: dict[str, Any] = {"__name__": "__main__"}
    cell_no = 0

    def shell(template: str) -> None:
        command = _FIELD.sub(lambda m: str(eval(m.group(1), ns)), template)  # IPython's var_expand
        started = time.monotonic()
        proc = subprocess.run(command, shell=True, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        records.append({"cell": cell_no, "command": command, "rc": proc.returncode, "stdout": proc.stdout,
                        "stderr": proc.stderr, "seconds": round(time.monotonic() - started, 2)})

    ns["__shell__"] = shell
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    try:
        for cell_no, cell in enumerate(cells):
            if cell["cell_type"] != "code":
                continue
            exec(compile(_translate("".join(cell["source"])), f"<cell {cell_no}>", "exec"), ns)
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                ns.update(overrides)
    finally:
        result.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
