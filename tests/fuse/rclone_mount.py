"""A real FUSE mount for tests: `rclone mount` of the emulated Drive, an HTTP source for aria2c, aria2c itself.

    with RcloneEnv(work) as env, RcloneMount(env, "emudrive:dl", work / "mnt", work) as mnt:
        aria2(mnt.path, source.url("a.iso"), "a.iso")

The mount runs with a write-back VFS cache (`--vfs-cache-mode writes --vfs-write-back 2s`), as Colab's
DriveFS does: writes land in a local cache and are uploaded after the file's last close (rclone
vfs/vfs.md, "--vfs-cache-mode writes"). It is started in the foreground as a child process (no
`--daemon`), logs to a file, and is always unmounted (`fusermount3 -u`, lazily if busy) and its process
ended on exit. `SourceServer` serves bytes on 127.0.0.1 with a Last-Modified time (aria2c
`--remote-time` copies it to the file), and can stall after the headers, as a server that stops
sending does, which leaves aria2's preallocated zeros in place.
"""

from __future__ import annotations

import email.utils
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rclone_env import RcloneEnv

MOUNT_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
ARIA2_TIMEOUT_S = 60
STALL_S = 10  # a stalled response is held this long at most; aria2c (--timeout=3) gives up first
# aria2c: preallocate every file (its default --no-file-allocation-limit of 5M skips smaller ones), take
# the server's Last-Modified as the mtime, never rename, retry nothing, read no ~/.aria2/aria2.conf, and
# write its control file (NAME.aria2) only when it stops unfinished, not at the start: otherwise the
# mount uploads it while a stalled download waits out its timeout.
ARIA2_ARGS = ("--no-conf=true", "--auto-save-interval=0", "--file-allocation=prealloc", "--no-file-allocation-limit=0",
              "--remote-time=true", "--allow-overwrite=true", "--auto-file-renaming=false", "--max-tries=1",
              "--timeout=3", "--console-log-level=warn", "--summary-interval=0", "--download-result=hide")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def fuse_tools_or_skip() -> None:
    """Skip where no FUSE mount can exist (/dev/fuse absent) or, outside CI, where a tool is missing."""
    if not Path("/dev/fuse").exists():
        pytest.skip("/dev/fuse is absent: this machine cannot mount FUSE filesystems")
    missing = [tool for tool in ("rclone", "aria2c", "fusermount3") if shutil.which(tool) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (Debian packages rclone, aria2, fuse3)"
        if _ci():
            pytest.fail(f"{why}; CI=true: scripts/test.sh installs them")
        pytest.skip(why)


class RcloneMount:
    """`rclone mount REMOTE MOUNTPOINT` with a write-back VFS cache, as a child process."""

    def __init__(self, env: RcloneEnv, remote: str, mountpoint: Path, work: Path, *extra: str) -> None:
        self.env, self.remote, self.path = env, remote, mountpoint
        self.log_file = work / "rclone-mount.log"
        mountpoint.mkdir(parents=True, exist_ok=False)  # a fresh, empty directory
        self.args = [*env.base_args(), "mount", remote, str(mountpoint), "--vfs-cache-mode", "writes",
                     "--vfs-write-back", "2s", "--cache-dir", str(work / "vfs-cache"), "--log-file",
                     str(self.log_file), "-v", *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RcloneMount:
        self.proc = subprocess.Popen(self.args, env=self.env.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"rclone mount did not come up (exit {self.proc.returncode}):\n"
                                     f"{self.log_tail()}")
            time.sleep(0.05)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Unmount (lazily if something still holds it) and end rclone; safe to call twice."""
        if os.path.ismount(self.path):
            done = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True,
                                  timeout=STOP_TIMEOUT_S, check=False)
            if done.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True,
                               timeout=STOP_TIMEOUT_S, check=False)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> RcloneMount:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Source:
    data: bytes
    mtime_s: float
    stall: bool = False  # send the headers, then nothing


class SourceServer:
    """HTTP/1.1 GET/HEAD of named byte strings on 127.0.0.1 (an ephemeral port)."""

    def __init__(self) -> None:
        self.files: dict[str, Source] = {}
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                src = server.files.get(self.path.lstrip("/"))
                if src is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(src.data)))
                self.send_header("Last-Modified", email.utils.formatdate(src.mtime_s, usegmt=True))
                self.end_headers()
                if not body:
                    return
                if src.stall:
                    self.wfile.flush()
                    server._released.wait(STALL_S)
                    self.close_connection = True
                    return
                self.wfile.write(src.data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def put(self, name: str, data: bytes, mtime_s: float, *, stall: bool = False) -> str:
        """Serve `data` at /name from now on; returns its URL."""
        self.files[name] = Source(data, mtime_s, stall)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> SourceServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def aria2(directory: Path, url: str, name: str) -> subprocess.CompletedProcess[str]:
    """aria2c downloads `url` to directory/name (preallocated first); the result is returned, not checked."""
    return subprocess.run(["aria2c", *ARIA2_ARGS, "--dir", str(directory), "--out", name, url],
                          capture_output=True, text=True, timeout=ARIA2_TIMEOUT_S, check=False)


def wait_for(what: str, ready: Callable[[], bool], timeout_s: float, log: Callable[[], str]) -> None:
    """Poll `ready` until it holds; fail after `timeout_s` with `what` and the mount's log."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{log()}")
        time.sleep(0.2)
