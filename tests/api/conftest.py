"""The API client fixture shared by the API tests; each module provides its own ``broker``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.service.broker import Broker

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(broker: Broker) -> Iterator[TestClient]:
    """The app over the module's broker, in process."""
    with TestClient(create_app(broker, TOKEN), raise_server_exceptions=False) as client:
        yield client
