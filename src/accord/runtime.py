"""``accord up``: settings, the real adapters they name, and the server and dispatcher that
run over the services :func:`accord.compose.compose` builds from them."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from accord.adapters import keys
from accord.adapters.carbon.chain import standard_chain
from accord.adapters.clock import SystemClock
from accord.adapters.federation_file import load_federation
from accord.adapters.local_backend import LocalBackend
from accord.adapters.oidc import OidcSettings, OidcVerifier
from accord.adapters.slurm.backend import SlurmBackend
from accord.adapters.sql.store import SqlStore
from accord.compose import Verifier, compose, ledger_service
from accord.domain.errors import Conflict, InvalidInput, Problem
from accord.domain.federation.model import BackendKind, Federation
from accord.ports import CarbonSource, SiteBackend
from accord.service.ledger import LedgerService
from accord.service.services import Services

log = logging.getLogger("accord")
DEFAULT_PORT = 8642
DEMO_FEDERATION = Path(__file__).parent / "data" / "demo-federation.toml"


def default_data_dir() -> Path:
    """``$ACCORD_DATA_DIR``, or ``~/.accord``."""
    return Path(os.environ.get("ACCORD_DATA_DIR") or Path.home() / ".accord")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Accord keeps its data and what it serves."""

    data_dir: Path
    federation_path: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    poll_interval_s: float = 0.5
    dispatch: bool = True

    @classmethod
    def resolve(
        cls,
        data_dir: Path | None = None,
        federation: Path | None = None,
        port: int | None = None,
        host: str | None = None,
        dispatch: bool = True,
    ) -> Settings:
        """Fill the gaps from the environment, then from defaults."""
        data = (data_dir or default_data_dir()).expanduser().resolve()
        fed = federation or Path(os.environ.get("ACCORD_FEDERATION") or DEMO_FEDERATION)
        url = os.environ.get("ACCORD_DATABASE_URL") or f"sqlite:///{data / 'accord.db'}"
        return cls(data, fed, url, host or "127.0.0.1", port or DEFAULT_PORT, dispatch=dispatch)


def ensure_token(data_dir: Path) -> str:
    """The local admin token, created (mode 0600) on first use."""
    path = data_dir / "admin.token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def build_backends(federation: Federation, data_dir: Path) -> dict[str, SiteBackend]:
    """One backend per site of the federation.

    Raises:
        InvalidInput: a site uses a backend kind this build cannot drive.
    """
    backends: dict[str, SiteBackend] = {}
    for site in federation.sites:
        if site.backend is BackendKind.LOCAL:
            root = Path(site.local.workdir) if site.local and site.local.workdir else data_dir / "jobs"
            backends[site.id] = LocalBackend(site, root)
        else:
            backends[site.id] = SlurmBackend(site, data_dir / "slurm-jobs")
    return backends


def build_carbon() -> CarbonSource:
    """Grid intensity: live APIs when configured, then data files, then built-in profiles.

    ``ACCORD_GB_CI_API`` (GB Carbon Intensity API base URL), ``ACCORD_EM_TOKEN``
    (Electricity Maps), ``ACCORD_CARBON_DATA`` (a folder of intensity files); with
    none set, the built-in typical profiles answer, offline.
    """
    data = os.environ.get("ACCORD_CARBON_DATA")
    return standard_chain(shared_data=Path(data) if data else None,
                          em_token=os.environ.get("ACCORD_EM_TOKEN"),
                          gb_api_url=os.environ.get("ACCORD_GB_CI_API"))


def build_ledger(federation: Federation, store: SqlStore, data_dir: Path) -> LedgerService:
    """The ledger service over the store, signing with the operator key in ``data_dir``."""
    return ledger_service(federation, store, SystemClock(), keys.load_or_create(data_dir))


def oidc_from_env(env: Mapping[str, str]) -> Verifier | None:
    """The OIDC verifier when ``ACCORD_OIDC_ISSUER``, ``ACCORD_OIDC_AUDIENCE`` and
    ``ACCORD_OIDC_JWKS`` (a file or URL) are set in ``env``; else None.

    Raises:
        InvalidInput: the OIDC settings are incomplete or wrong.
    """
    settings = OidcSettings.from_env(env)
    if settings is None:
        return None
    oidc = OidcVerifier(settings)

    def verifier(token: str) -> tuple[str, str]:
        claims = oidc.verify(token)
        return claims.issuer, claims.subject

    return verifier


def build(settings: Settings) -> Services:
    """Load the federation, open the store and compose every service over the real
    backends, the system clock, the carbon chain and OIDC when configured.

    Raises:
        InvalidInput: the federation file or the OIDC settings are wrong.
        Unavailable: the database cannot be reached.
    """
    federation = load_federation(settings.federation_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    verifier = oidc_from_env(os.environ)
    store = SqlStore(settings.database_url)
    try:
        return compose(federation, store, build_backends(federation, settings.data_dir), SystemClock(),
                       ensure_token(settings.data_dir), carbon=build_carbon(), oidc=verifier,
                       data_dir=settings.data_dir)
    except BaseException:
        store.close()
        raise


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock: one ``accord up`` per data directory.

    Raises:
        Conflict: another ``accord up`` holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / "accord.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        other = fh.read().strip() or "?"
        fh.close()
        raise Conflict(f"another 'accord up' (pid {other}) is using data directory {data_dir}; "
                       "stop it or pass --data-dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    try:
        yield
    finally:
        fh.close()


class Dispatcher(threading.Thread):
    """Runs the broker's step, the ledger's posting sweep and the campaigns' log collection
    every ``interval`` seconds, over the same services as the API."""

    def __init__(self, services: Services, interval: float) -> None:
        super().__init__(name="accord-dispatcher", daemon=True)
        self.services = services
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        s = self.services
        while not self.stopping.is_set():
            for name, work in (("dispatcher", s.broker.step),
                               ("ledger posting", s.ledger.post_pending),
                               ("campaign log collection", s.campaigns.collect)):
                try:
                    work()
                except Exception:  # the loop must outlive any one failure; it is logged
                    log.exception("%s pass failed; retrying", name)
            self.stopping.wait(self.interval)


def serve(settings: Settings) -> None:
    """Run the API, the status page and the dispatcher until interrupted: both over the
    one record of services :func:`build` composes.

    Raises:
        InvalidInput, Unavailable, Conflict: as :func:`build` and :func:`exclusive`.
    """
    import uvicorn

    from accord.api.app import create_app

    if not 0 < settings.port < 65536:
        raise InvalidInput([Problem("--port", "is not a TCP port", str(settings.port), "1..65535")])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with exclusive(settings.data_dir):
        services = build(settings)
        app = create_app(services, title=f"Accord — {services.federation.name}")
        url = f"http://{settings.host}:{settings.port}"
        (settings.data_dir / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
        dispatcher = Dispatcher(services, settings.poll_interval_s)
        if settings.dispatch:
            dispatcher.start()
        print(f"Accord is up at {url} (federation: {services.federation.name}; "
              f"data: {settings.data_dir}; store: {settings.database_url.split(':', 1)[0]})", flush=True)
        try:
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                        access_log=False)
        finally:
            dispatcher.stopping.set()
            if dispatcher.is_alive():
                dispatcher.join(timeout=10)
            services.close()
