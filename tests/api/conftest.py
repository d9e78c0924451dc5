"""The API client fixture shared by the API tests; each module composes its own ``services``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.service.broker import Broker
from accord.service.services import Services

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    """The app over the module's services, in process."""
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def broker(services: Services) -> Broker:
    """The module's broker (the one the app uses)."""
    return services.broker
