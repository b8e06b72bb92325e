"""The official Microsoft Graph Python SDK (msgraph-sdk, msgraph-core's LargeFileUploadTask) against the
emulated Graph, unmodified: a large upload in fragments, then the item's quickXorHash against the bytes.

The SDK is pointed at the emulator the supported way: a GraphRequestAdapter whose `base_url` is
`<emulator>/v1.0`, an httpx client trusting the emulator's CA, and kiota's bearer-token provider
returning a token from the emulator's own token endpoint (an Entra device-code sign-in).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from kiota_abstractions.authentication.base_bearer_token_authentication_provider import (
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (
    CreateUploadSessionPostRequestBody,
)
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties
from msgraph.generated.models.folder import Folder
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.large_file_upload import LargeFileUploadTask

from driveferry.emulator.server import Emulator
from driveferry.integrity.hashes import HashType, hash_bytes, hex_to_b64

FRAGMENT = 3 * 320 * 1024  # Graph wants fragments in multiples of 320 KiB (api-notes 4.x, Graph upload docs)
SIZE = 3 * 1024 * 1024 + 4321  # four fragments, the last one short


class _EmulatorToken(AccessTokenProvider):
    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def _device_code_token(emu: Emulator) -> str:
    """A delegated Graph token the way a user signs in (device code; the emulator approves on the first poll)."""
    ms = emu.credentials()["microsoft"]
    s = requests.Session()
    s.trust_env, s.verify = False, str(emu.ca_file)
    base = f"{ms['authority']}/oauth2/v2.0"
    code = s.post(base + "/devicecode", data={"client_id": ms["public_client_id"], "scope": "Files.ReadWrite.All"},
                  timeout=30)
    code.raise_for_status()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": ms["public_client_id"],
            "device_code": code.json()["device_code"]}
    r = s.post(base + "/token", data=poll, timeout=30)
    if r.status_code == 400 and r.json().get("error") == "authorization_pending":
        r = s.post(base + "/token", data=poll, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("msgraph"), tls=True) as e:
        yield e


def _client(emu: Emulator) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    trust = ssl.create_default_context(cafile=str(emu.ca_file))
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=trust, trust_env=False))
    auth = BaseBearerTokenAuthenticationProvider(_EmulatorToken(_device_code_token(emu), "127.0.0.1"))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = emu.base_url + "/v1.0"
    return GraphServiceClient(request_adapter=adapter), http


async def _mkdir(client: GraphServiceClient, drive_id: str, name: str) -> None:
    folder = DriveItem(name=name, folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "replace"})
    made = await client.drives.by_drive_id(drive_id).items.by_drive_item_id("root").children.post(folder)
    assert made is not None and made.folder is not None


async def _upload(client: GraphServiceClient, drive_id: str, path: str, data: bytes) -> tuple[DriveItem, int]:
    body = CreateUploadSessionPostRequestBody(
        item=DriveItemUploadableProperties(additional_data={"@microsoft.graph.conflictBehavior": "replace"}))
    session = await client.drives.by_drive_id(drive_id).items.by_drive_item_id(f"root:/{path}:") \
        .create_upload_session.post(body)
    assert session is not None and session.upload_url
    task = LargeFileUploadTask(session, client.request_adapter, BytesIO(data), parsable_factory=DriveItem,
                               max_chunk_size=FRAGMENT)
    # Not task.upload(): it misreads the open "26-" form of nextExpectedRanges that Graph documents and
    # sends 5 MiB + 1 byte fragments (api-notes Part C §22; msgraph-sdk-python-core#716/#718). The task's
    # own next_chunk()/last_chunk() send one explicit range each; the ranges come from the server's answers.
    start, fragments = 0, 0
    stream = task.get_file()
    while start + FRAGMENT < len(data):
        task.next_range = f"{start}-{start + FRAGMENT - 1}"
        answer = await task.next_chunk(stream)
        fragments += 1
        ranges = answer.next_expected_ranges or []
        assert ranges, "a fragment before the last must be answered with nextExpectedRanges"
        start = int(str(ranges[0]).split("-")[0])
    task.next_range = f"{start}-{len(data) - 1}"
    item = await task.last_chunk(stream)
    fragments += 1
    assert isinstance(item, DriveItem), item
    return item, fragments


def test_large_file_upload_task_then_quickxorhash_matches_the_bytes(emu: Emulator, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    drive_id = emu.credentials()["graph"]["drive_id"]

    async def run() -> tuple[DriveItem, int, DriveItem | None]:
        client, http = _client(emu)
        try:
            # "the parent folder must exist before you call createSession" (OneDrive/onedrive-api-docs#364)
            await _mkdir(client, drive_id, "sdk")
            item, fragments = await _upload(client, drive_id, "sdk/large.bin", data)
            assert item.id
            fetched = await client.drives.by_drive_id(drive_id).items.by_drive_item_id(item.id).get()
            return item, fragments, fetched
        finally:
            await http.aclose()

    item, fragments, fetched = asyncio.run(run())
    assert fragments == 4
    assert item.size == SIZE and item.name == "large.bin"
    want = hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])
    assert fetched is not None and fetched.file is not None and fetched.file.hashes is not None
    assert fetched.file.hashes.quick_xor_hash == want
    graph = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.").model
    stored = graph.content_path(graph.by_path("/sdk/large.bin"))
    assert stored is not None and stored.read_bytes() == data
