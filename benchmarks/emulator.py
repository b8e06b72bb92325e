"""Loopback throughput of the Drive emulator: downloads and resumable uploads, 1 and N streams.

    python benchmarks/emulator.py [--size-mib 1024] [--streams 4] [--tls] [--chunk-mib 64] [--client]

Starts an in-process emulator (Drive only) over a temporary directory, seeds one file through the model
API, and prints MB/s (10^6 bytes per second) for:
  * download, 1 stream and N streams in parallel (requests, 1 MiB reads), and with --client also
    google-api-python-client's MediaIoBaseDownload;
  * resumable upload with md5+sha1+sha256 computed server-side, 1 stream and N streams (each stream
    uploads size/N), and with --client also MediaIoBaseUpload.
Client and server share this process (and its GIL), so the figures are a lower bound for a real
relay talking to a separate emulator process. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from driveferry.emulator.drive.routes import DriveApi
from driveferry.emulator.server import Emulator

MiB = 1024 * 1024


def session(emu: Emulator, token: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    if emu.ca_file:
        s.verify = str(emu.ca_file)
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def download(emu: Emulator, token: str, file_id: str) -> int:
    n = 0
    with session(emu, token).get(f"{emu.base_url}/drive/v3/files/{file_id}", params={"alt": "media"},
                                 stream=True) as r:
        r.raise_for_status()
        for block in r.iter_content(MiB):
            n += len(block)
    return n


def upload(emu: Emulator, token: str, size: int, chunk: bytes) -> int:
    s = session(emu, token)
    r = s.post(f"{emu.base_url}/upload/drive/v3/files", params={"uploadType": "resumable", "fields": "size"},
               headers={"X-Upload-Content-Length": str(size)}, json={"name": "bench.bin"})
    r.raise_for_status()
    uri, sent = r.headers["Location"], 0
    plain = requests.Session()
    plain.trust_env = False
    plain.verify = s.verify
    while sent < size:
        part = chunk[: min(len(chunk), size - sent)]
        r = plain.put(uri, data=part, headers={"Content-Range": f"bytes {sent}-{sent + len(part) - 1}/{size}"})
        if r.status_code not in (200, 308):
            raise RuntimeError(f"chunk at {sent}: HTTP {r.status_code} {r.text[:200]}")
        sent += len(part)
    assert json.loads(r.text)["size"] == str(size)
    return size


def client_service(emu: Emulator, token: str) -> object:
    import google_auth_httplib2
    from google.oauth2.credentials import Credentials
    from googleapiclient import discovery_cache
    from googleapiclient.discovery import build_from_document
    from googleapiclient.http import build_http
    doc = json.loads(discovery_cache.get_static_doc("drive", "v3"))
    doc["rootUrl"], doc["baseUrl"] = emu.base_url + "/", emu.base_url + "/drive/v3/"
    h = build_http()
    if emu.ca_file:
        h.ca_certs = str(emu.ca_file)
    return build_from_document(doc, http=google_auth_httplib2.AuthorizedHttp(Credentials(token=token), http=h))


def client_download(svc: object, file_id: str, chunk: int) -> int:
    from googleapiclient.http import MediaIoBaseDownload

    class Sink(io.RawIOBase):
        n = 0

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            size = len(b)  # type: ignore[arg-type]
            self.n += size
            return size

    sink = Sink()
    dl = MediaIoBaseDownload(sink, svc.files().get_media(fileId=file_id), chunksize=chunk)  # type: ignore[attr-defined]
    done = False
    while not done:
        _, done = dl.next_chunk()
    return sink.n


def client_upload(svc: object, size: int, chunk: int) -> int:
    from googleapiclient.http import MediaIoBaseUpload

    class Zeros(io.RawIOBase):  # a sized, seekable stream with no memory behind it
        pos = 0

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def seek(self, off: int, whence: int = 0) -> int:
            self.pos = off if whence == 0 else self.pos + off if whence == 1 else size + off
            return self.pos

        def tell(self) -> int:
            return self.pos

        def read(self, n: int = -1) -> bytes:
            n = size - self.pos if n < 0 else min(n, size - self.pos)
            self.pos += n
            return bytes(n)

    media = MediaIoBaseUpload(Zeros(), "application/octet-stream", chunksize=chunk, resumable=True)
    got = svc.files().create(body={"name": "c.bin"}, media_body=media, fields="size").execute()  # type: ignore[attr-defined]
    return int(got["size"])


def timed(label: str, streams: int, fn: Callable[[], int]) -> float:
    """Print wall-clock MB/s and MB per CPU-second of this process (client and server together): the
    second figure holds when other work shares the machine, the first does not."""
    t0, c0 = time.perf_counter(), time.process_time()
    if streams == 1:
        total = fn()
    else:
        with ThreadPoolExecutor(streams) as pool:
            total = sum(pool.map(lambda _: fn(), range(streams)))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = total / dt / 1e6
    print(f"{label:<42} {streams} stream(s) {total / MiB:8.0f} MiB {dt:7.2f} s {rate:8.0f} MB/s "
          f"{cpu:7.2f} CPU-s {total / max(cpu, 1e-9) / 1e6:8.0f} MB/CPU-s", flush=True)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--chunk-mib", type=int, default=64, help="upload chunk (a multiple of 256 KiB)")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--client", action="store_true", help="also measure google-api-python-client")
    ap.add_argument("--data-dir", default=None, help="parent of the emulator's data directory (e.g. /dev/shm "
                    "to take the disk out of the figures)")
    args = ap.parse_args()
    size, n = args.size_mib * MiB, args.streams
    chunk = os.urandom(min(size, args.chunk_mib * MiB))
    with tempfile.TemporaryDirectory(prefix="driveferry-bench-", dir=args.data_dir) as tmp, \
            Emulator(tmp, tls=args.tls, modules=[DriveApi()]) as emu:
        api = emu.modules[0]
        assert isinstance(api, DriveApi) and api.model is not None
        token = emu.state.issue_token("google", "bench@example.com", lifetime_s=86400)
        seed = os.urandom(4 * MiB)
        f = api.model.create_file("seed.bin", (seed for _ in range(size // len(seed))))
        print(f"emulator {emu.base_url} ({'TLS' if args.tls else 'plain HTTP'}), data in {tmp}, file "
              f"{size / MiB:.0f} MiB, upload chunk {len(chunk) / MiB:.0f} MiB, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        timed("download (requests)", 1, lambda: download(emu, token, f.id))
        timed("download (requests)", n, lambda: download(emu, token, f.id))
        timed("resumable upload + md5/sha1/sha256", 1, lambda: upload(emu, token, size, chunk))
        timed("resumable upload + md5/sha1/sha256", n, lambda: upload(emu, token, size // n, chunk))
        if args.client:
            svc = client_service(emu, token)
            timed("download (MediaIoBaseDownload)", 1, lambda: client_download(svc, f.id, len(chunk)))
            timed("upload (MediaIoBaseUpload)", 1, lambda: client_upload(svc, size, len(chunk)))


if __name__ == "__main__":
    main()
