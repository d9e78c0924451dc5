"""``accord up``: settings, the real adapters they name, and the server and dispatcher that
run over the services :func:`accord.compose.compose` builds from them."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
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
from accord.adapters.sql import identity
from accord.adapters.sql.existing import sqlite_file
from accord.adapters.sql.lease import SqlLease
from accord.adapters.sql.store import SqlStore
from accord.compose import Verifier, compose, ledger_service
from accord.domain.errors import Conflict, InvalidInput, LeaseLost, Problem
from accord.domain.federation.model import BackendKind, Federation
from accord.domain.ledger import signing
from accord.domain.ledger.statement import key_id
from accord.ports import CarbonSource, SiteBackend
from accord.service import log_context
from accord.service.leadership import MARGIN_S, Leadership
from accord.service.ledger import LedgerService
from accord.service.services import Services

log = logging.getLogger("accord")
DEFAULT_PORT = 8642
ADMIN_TOKEN_ENV = "ACCORD_ADMIN_TOKEN_FILE"  # noqa: S105 (the name of a setting)
MIN_TOKEN_CHARS = 32
DISPATCH_LEASE = "dispatch"
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
    adopt_identity: bool = False
    log_format: str = "text"     # or "json" (one object a line: accord.service.log_context)
    tls: tuple[Path, Path] | None = None   # (certificate chain, private key), PEM: serve HTTPS

    @classmethod
    def resolve(
        cls,
        data_dir: Path | None = None,
        federation: Path | None = None,
        port: int | None = None,
        host: str | None = None,
        dispatch: bool = True,
        adopt_identity: bool = False,
        log_format: str = "text",
        tls: tuple[Path, Path] | None = None,
    ) -> Settings:
        """Fill the gaps from the environment, then from defaults."""
        data = (data_dir or default_data_dir()).expanduser().resolve()
        fed = federation or Path(os.environ.get("ACCORD_FEDERATION") or DEMO_FEDERATION)
        url = os.environ.get("ACCORD_DATABASE_URL") or f"sqlite:///{data / 'accord.db'}"
        return cls(data, fed, url, host or "127.0.0.1", port or DEFAULT_PORT, dispatch=dispatch,
                   adopt_identity=adopt_identity, log_format=log_format, tls=tls)


def admin_token(data_dir: Path, env: Mapping[str, str]) -> str:
    """The admin token: the file ``$ACCORD_ADMIN_TOKEN_FILE`` names (replicas share it; never
    created here), else the data directory's own, created on first use.

    Raises:
        InvalidInput: the named file cannot be read or holds too short a token.
    """
    named = env.get(ADMIN_TOKEN_ENV)
    if not named:
        return ensure_token(data_dir)
    try:
        token = Path(named).read_text().strip()
    except OSError as exc:
        raise InvalidInput([Problem(ADMIN_TOKEN_ENV, f"cannot read: {exc.strerror}", named,
                                    "a file holding the admin token")]) from None
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidInput([Problem(ADMIN_TOKEN_ENV, f"the token is {len(token)} characters", named,
                                    f"at least {MIN_TOKEN_CHARS} (e.g. openssl rand -base64 32)")])
    return token


def signing_key(data_dir: Path, env: Mapping[str, str]) -> bytes:
    """The ledger's signing key: the file ``$ACCORD_SIGNING_KEY_FILE`` names (replicas share
    it; never created here), else the data directory's own, created on first use.

    Raises:
        InvalidInput: the key file is missing or not an Ed25519 private key.
    """
    named = env.get(keys.SIGNING_KEY_ENV)
    return keys.load(Path(named)) if named else keys.load_or_create(data_dir)


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
        if site.backend is BackendKind.AGENT:
            continue   # its agent calls in: compose gives it an AgentBackend over the store
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
    """The ledger service over the store, signing with the hub's key (:func:`signing_key`).

    Raises:
        InvalidInput: ``$ACCORD_SIGNING_KEY_FILE`` names no Ed25519 private key.
    """
    return ledger_service(federation, store, SystemClock(), signing_key(data_dir, os.environ))


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
    token = admin_token(settings.data_dir, os.environ)
    private = signing_key(settings.data_dir, os.environ)
    backends = build_backends(federation, settings.data_dir)
    store = SqlStore(settings.database_url)
    try:
        identity.claim(store, hub_facts(private, token, backends), adopt=settings.adopt_identity)
        return compose(federation, store, backends, SystemClock(), token, carbon=build_carbon(),
                       oidc=verifier, signing_key=private, data_dir=settings.data_dir,  # its audit spool
                       notify_env=os.environ)   # SMTP settings (docs/design/notifications.md)
    except BaseException:
        store.close()
        raise


def hub_facts(private: bytes, token: str, backends: Mapping[str, SiteBackend]) -> dict[str, tuple[str, str]]:
    """What every replica of a hub must share, each with how to set it."""
    facts = {
        "ledger signing key": (key_id(signing.public_key(private)),
                               f"give every replica the same key file in ${keys.SIGNING_KEY_ENV}"),
        "admin token (SHA-256)": (hashlib.sha256(token.encode()).hexdigest(),
                                  f"give every replica the same token file in ${ADMIN_TOKEN_ENV}"),
    }
    for site_id, backend in backends.items():
        if isinstance(backend, LocalBackend):
            facts[f"site {site_id} job directory"] = (
                str(backend.root.resolve()),
                f"set [sites.local] workdir of site {site_id} to a directory every replica shares")
    return facts


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock: one ``accord up`` per data directory.

    Raises:
        Conflict: another ``accord up`` holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with _flock(data_dir / "accord.lock",
                f"is using data directory {data_dir}; stop it or pass --data-dir"):
        yield


@contextmanager
def single_sqlite(database_url: str) -> Iterator[None]:
    """Hold a lock beside a SQLite database: SQLite serves one ``accord up`` at a time
    (replicas need PostgreSQL); other databases pass.

    Raises:
        Conflict: another ``accord up`` uses the same SQLite file.
    """
    path = sqlite_file(database_url)
    if path is None:
        yield
        return
    path = path.resolve()
    with _flock(path.with_name(path.name + ".lock"),
                f"is using the SQLite database {path}: SQLite serves one 'accord up' at a time; "
                "run replicas on PostgreSQL (docs/design/replicas.md)"):
        yield


@contextmanager
def _flock(path: Path, busy: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        other = fh.read().strip() or "?"
        fh.close()
        raise Conflict(f"another 'accord up' (pid {other}) {busy}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    try:
        yield
    finally:
        fh.close()


class LeaseKeeper(threading.Thread):
    """Takes and renews the dispatch lease every ``leadership.renew_s``, whatever the
    dispatcher is doing; releases it on stop."""

    def __init__(self, leadership: Leadership) -> None:
        super().__init__(name="accord-lease", daemon=True)
        self.leadership = leadership
        self.stopping = threading.Event()

    def run(self) -> None:
        lead = self.leadership
        was = False
        while not self.stopping.is_set():
            now = lead.tick()
            if now != was:
                log.info("replica %s %s", lead.holder,
                         f"leads (lease epoch {lead.epoch})" if now else "stands by")
                was = now
            self.stopping.wait(lead.renew_s / 2)
        lead.step_down()


MIN_PASS_GAP_S = 0.05   # between two dispatcher passes, however often it is nudged


class Dispatcher(threading.Thread):
    """While this replica leads, runs the broker's step, the ledger's posting sweep and the
    campaigns' log collection every ``interval`` seconds, over the same services as the API,
    each fenced by the lease."""

    def __init__(self, services: Services, interval: float, leadership: Leadership) -> None:
        super().__init__(name="accord-dispatcher", daemon=True)
        self.services = services
        self.interval = interval
        self.leadership = leadership
        self.stopping = threading.Event()

    def run(self) -> None:
        s = self.services
        while not self.stopping.is_set():
            for name, work in (("dispatcher", s.broker.step),
                               ("ledger posting", s.ledger.post_pending),
                               ("campaign log collection", s.campaigns.collect)):
                if not self.leadership.leading():
                    break
                try:
                    with self.leadership.fenced():
                        work()
                except LeaseLost as exc:
                    log.warning("%s pass stopped: %s", name, exc)
                    break
                except Exception:  # the loop must outlive any one failure; it is logged
                    log.exception("%s pass failed; retrying", name)
            self._pause()

    def _pause(self) -> None:
        """Wait ``interval`` seconds for the next pass, or less when the broker was nudged
        (a submission stored, a site reported), but at least :data:`MIN_PASS_GAP_S`."""
        if self.stopping.wait(MIN_PASS_GAP_S):
            return
        nudged = self.services.broker.nudged
        nudged.wait(max(0.0, self.interval - MIN_PASS_GAP_S))
        nudged.clear()


def replica_name(settings: Settings) -> str:
    """This replica as the lease names it: host, pid, port."""
    return f"{socket.gethostname()}:{os.getpid()}:{settings.port}"


def serve(settings: Settings) -> None:
    """Run the API, the status page and the dispatcher until interrupted: both over the
    one record of services :func:`build` composes. Any number may serve one PostgreSQL
    database; the dispatcher runs in the one holding the dispatch lease.

    Raises:
        InvalidInput, Unavailable, Conflict: as :func:`build`, :func:`exclusive` and
        :func:`single_sqlite`.
    """
    import uvicorn

    from accord.api.app import create_app

    if not 0 < settings.port < 65536:
        raise InvalidInput([Problem("--port", "is not a TCP port", str(settings.port), "1..65535")])
    for where, path in zip(("--tls-cert", "--tls-key"), settings.tls or (), strict=False):
        if not path.is_file():
            raise InvalidInput([Problem(where, "is not a readable file", str(path), "a PEM file")])
    log_context.configure(settings.log_format)
    with exclusive(settings.data_dir), single_sqlite(settings.database_url):
        services = build(settings)
        app = create_app(services, title=f"Accord — {services.federation.name}")
        url = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
        (settings.data_dir / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
        leadership = Leadership(_lease(services), replica_name(settings))
        services.telemetry.lead_by(leadership.leading, lambda: leadership.epoch)
        keeper = LeaseKeeper(leadership)
        dispatcher = Dispatcher(services, settings.poll_interval_s, leadership)
        notifier = Notifier(services, leadership)
        cosigning = CosignCollector(services, leadership)
        if settings.dispatch:
            keeper.start()
            dispatcher.start()
            notifier.start()
            cosigning.start()
        print(f"Accord is up at {url} (federation: {services.federation.name}; "
              f"data: {settings.data_dir}; store: {settings.database_url.split(':', 1)[0]}; "
              f"replica: {leadership.holder})", flush=True)
        try:
            cert, key = settings.tls or (None, None)
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                        access_log=False, log_config=None,   # uvicorn's lines: our handler, our format
                        ssl_certfile=cert, ssl_keyfile=key)
        finally:
            notifier.stopping.set()
            cosigning.stopping.set()
            _stop(dispatcher, keeper)
            services.close()


class Notifier(threading.Thread):
    """The notification outbox's worker (:meth:`accord.service.notify.NotifyService.run`): a
    thread of its own, so a slow receiver never delays the dispatcher; single work, under the
    dispatch lease's fence."""

    def __init__(self, services: Services, leadership: Leadership) -> None:
        super().__init__(name="accord-notify", daemon=True)
        self.stopping = threading.Event()
        self.services = services
        self.leadership = leadership

    def run(self) -> None:
        self.services.notify.run(self.stopping, self.leadership)


class CosignCollector(threading.Thread):
    """Every ``[witnessing] interval_s``, while this replica holds the dispatch lease, asks the
    partners' witnesses to cosign the ledger's current tree (a thread of its own: a witness
    that is down costs its timeout, never a dispatcher pass)."""

    def __init__(self, services: Services, leadership: Leadership) -> None:
        super().__init__(name="accord-cosign", daemon=True)
        self.stopping = threading.Event()
        self.services = services
        self.leadership = leadership

    def run(self) -> None:
        ledger = self.services.ledger
        interval = ledger.federation.witnessing.interval_s if ledger.federation.witnessing else 0
        while interval and not self.stopping.is_set():
            if not self.leadership.leading():
                self.stopping.wait(1)
                continue
            try:
                with self.leadership.fenced():
                    ledger.collect_cosignatures()
            except LeaseLost as exc:
                log.warning("cosignature collection stopped: %s", exc)
                continue
            except Exception:  # the loop must outlive any one failure; it is logged
                log.exception("cosignature collection failed; retrying")
            self.stopping.wait(interval)


def _lease(services: Services) -> SqlLease:
    store = services.store
    if not isinstance(store, SqlStore):
        raise TypeError(f"accord up needs the SQL store, not {type(store).__name__}")
    return SqlLease(store, DISPATCH_LEASE, margin_s=MARGIN_S)


def _stop(dispatcher: Dispatcher, keeper: LeaseKeeper) -> None:
    dispatcher.stopping.set()
    dispatcher.services.broker.nudge()
    if dispatcher.is_alive():
        dispatcher.join(timeout=10)
    keeper.stopping.set()
    if keeper.is_alive():
        keeper.join(timeout=10)
