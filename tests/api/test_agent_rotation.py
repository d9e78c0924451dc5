"""A site's key is rotated and revoked through the federation file: while both keys are
listed the agent may sign with either (the new one comes into use), once the old one is
removed (the hub restarted on the new file) it is refused, and the usage it signed before
stays attributable to its key id."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.request_signing import RequestSigner, new_private_key
from accord.adapters.sql.store import SqlStore
from accord.api.app import create_app
from accord.compose import compose
from accord.domain.agent.attest import key_id
from accord.service.services import Services
from tests.agent_world import agent_federation_text

TOKEN = "rotation-admin"


def text(key: str) -> str:
    return "ed25519:" + key


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def keys() -> dict[str, tuple[bytes, bytes]]:
    return {name: new_private_key() for name in ("old", "new", "other")}


@pytest.fixture
def db(db_url: str) -> Iterator[SqlStore]:
    store = SqlStore(db_url)
    try:
        yield store
    finally:
        store.close()


def hub(db: SqlStore, listed: list[bytes], other: bytes) -> tuple[TestClient, Services]:
    """An app over ``db`` whose federation lists ``listed`` for isambard (and ``other`` for jeanzay)."""
    fed = parse_federation_text(
        agent_federation_text({"isambard": [text(b64(k)) for k in listed], "jeanzay": [text(b64(other))]})
    )
    services = compose(fed, db, {}, FakeClock(datetime.now(UTC).replace(microsecond=0)), TOKEN)
    return TestClient(create_app(services), raise_server_exceptions=False), services


def heartbeat(client: TestClient, private: bytes) -> int:
    url = "http://testserver/api/agent/v1/heartbeat"
    body = b'{"loads": {}}'
    headers = RequestSigner("isambard", private).headers("POST", url, body)
    return client.post(url, content=body, headers={**headers, "Content-Type": "application/json"}).status_code


def test_a_key_is_rotated_by_listing_the_next_and_revoked_by_removing_it(
    db: SqlStore, keys: dict[str, tuple[bytes, bytes]]
) -> None:
    (old, old_pub), (new, new_pub), (_, other_pub) = keys["old"], keys["new"], keys["other"]
    client, services = hub(db, [old_pub], other_pub)
    with client:
        assert heartbeat(client, old) == 200
        assert heartbeat(client, new) == 401  # not listed yet
    services.close()
    client, services = hub(db, [old_pub, new_pub], other_pub)  # rotating: both listed
    with client:
        assert heartbeat(client, old) == 200
        assert heartbeat(client, new) == 200
    services.close()
    client, services = hub(db, [new_pub], other_pub)  # the old one removed: revoked
    with client:
        r = client.post("/api/agent/v1/heartbeat")
        assert r.status_code == 401
        assert heartbeat(client, new) == 200
        assert heartbeat(client, old) == 401
        seen = services.agents.store.last_seen("isambard")
        assert seen is not None and seen.key_id == key_id(new_pub)
    services.close()
