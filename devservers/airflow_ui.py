"""A local Airflow with its UI over the demo's servers and data: ``scripts/airflow.sh`` (``make ui``).

``python -m devservers.airflow_ui up|down|status [--namespace demo|test]`` starts the api-server,
scheduler, dag-processor and triggerer in ``AIRFLOW_HOME`` (the demo's, ``.run/airflow-demo``,
unless ``scripts/env.sh`` was told otherwise), each in its own process group with a pid file,
waits until ``/api/v2/monitor/health`` reports every component healthy, and prints the UI's
address, the login and where the retention dashboard is. ``up`` is idempotent: a running
instance is reported, not started twice. ``down`` stops exactly the processes whose pid files
it wrote (process group TERM, then KILL after a grace period).

Everything of one instance lives under ``$AIRFLOW_HOME/ui/``: ``pids/``, ``logs/``,
``instance.json`` (port, log-server ports) and ``secrets.json`` (the JWT and session secrets the
four processes must share; development values, generated once, mode 0600). Logins come from
Airflow's simple auth manager: the passwords it generates are in
``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``.

The port is ``RETENTION_UI_PORT`` when set, else 8080 when free, else the next free one up
to 8099; never the Swift proxy's (``devservers/swift.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devservers import connections, mysql_users
from devservers.procs import (
    PROJECT_ROOT,
    Endpoint,
    kill_tree,
    load_endpoints,
    owned_pid,
    port_free,
    spare_port,
    start,
)

#: The components, in start order; each one's argv after ``python -m airflow``.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_PATH = "/api/v2/monitor/health"
#: The health document's name of each component that heartbeats (the api-server answers itself).
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
DEFAULT_PORT = 8080
PORT_ENV = "RETENTION_UI_PORT"
USERS_ENV = "RETENTION_UI_USERS"
#: ``user:role`` pairs for the simple auth manager; a second user so that a four-eyes approval
#: (a termination approved by someone other than who triggered it) can be tried.
DEFAULT_USERS = "admin:admin,approver:admin"
START_TIMEOUT = float(os.environ.get("RETENTION_UI_START_TIMEOUT", "240"))  # seconds; 30-60 s on 2 quiet cores
STOP_GRACE = 15.0  # seconds between SIGTERM and SIGKILL of a process group
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
#: The plugin's mount point and the UI route of its external view (plugins/retention_dashboard.py).
DASHBOARD_PREFIX = "/retention"
DASHBOARD_UI_ROUTE = "/plugin/retention"


def say(message: str) -> None:
    print(f"[airflow-ui] {message}", flush=True)


@dataclass(frozen=True)
class Instance:
    """Where one local Airflow lives and listens."""

    home: str
    port: int
    namespace: str
    worker_log_port: int
    triggerer_log_port: int
    #: component -> its process's start time (``/proc/<pid>/stat``), to tell our pid from a recycled one
    started: dict[str, int] = field(default_factory=dict)
    executor: str = "LocalExecutor"
    #: CeleryExecutor only: worker name -> its log server's port
    workers: dict[str, int] = field(default_factory=dict)
    #: CeleryExecutor only: the PostgreSQL metadata DB (host, port, database, user; the password
    #: is in ``secrets.json``) and the Celery broker's URL
    metadata_db: dict[str, object] = field(default_factory=dict)
    broker_url: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS + tuple(self.workers)


# --------------------------------------------------------------------------- files


def ui_dir(home: Path) -> Path:
    return home / "ui"


def pid_dir(home: Path) -> Path:
    return ui_dir(home) / "pids"


def log_path(home: Path, component: str) -> Path:
    return ui_dir(home) / "logs" / f"{component}.log"


def _instance_file(home: Path) -> Path:
    return ui_dir(home) / "instance.json"


def load_instance(home: Path) -> Instance | None:
    path = _instance_file(home)
    if not path.exists():
        return None
    try:
        return Instance(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def _write_private(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)


def shared_secrets(home: Path) -> dict[str, str]:
    """The secrets every component must agree on, generated once per home (mode 0600):
    the JWT secret, the session key, the Fernet key and the metadata DB's password."""
    path = ui_dir(home) / "secrets.json"
    values = dict(json.loads(path.read_text())) if path.exists() else {}
    wanted = {"jwt_secret": lambda: secrets.token_hex(64), "secret_key": lambda: secrets.token_hex(32),
              "fernet_key": _fernet_key, "metadata_db_password": lambda: secrets.token_urlsafe(18)}
    missing = {name: make() for name, make in wanted.items() if name not in values}
    if missing:
        values.update(missing)
        _write_private(path, values)
    return values


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _extra_env_file(home: Path) -> Path:
    return ui_dir(home) / "extra_env.json"


def extra_env(home: Path) -> dict[str, str]:
    """What ``up(extra_env=...)`` added to every component's environment (a test's stores,
    its configuration), so that a component restarted later gets the same."""
    path = _extra_env_file(home)
    return dict(json.loads(path.read_text())) if path.exists() else {}


def passwords(home: Path) -> dict[str, str]:
    """The simple auth manager's generated passwords (user -> password); empty before its first start."""
    path = home / PASSWORDS_FILE
    try:
        return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in parentheses may hold spaces


def _is_component(pid: int, component: str, home: Path) -> bool:
    """The pid is still the component we started in this home, not a recycled pid."""
    instance = load_instance(home)
    started = instance.started.get(component) if instance else None
    return started is not None and process_start_time(pid) == started


def running_components(home: Path) -> dict[str, int]:
    """Component -> pid of this home's components that are alive."""
    alive = {}
    instance = load_instance(home)
    for component in instance.components if instance else COMPONENTS:
        pid = owned_pid(component, pid_dir=pid_dir(home))
        if pid is not None and _is_component(pid, component, home):
            alive[component] = pid
    return alive


def _exited(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (a failed ``up``): reap it
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def down(home: Path) -> list[str]:
    """Stop this home's components (the ones whose pid files we wrote): TERM every process
    group at once, then KILL what is left of each after the grace period; their names."""
    instance = load_instance(home)
    running = running_components(home)
    for pid in running.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    for pid in running.values():
        while not _exited(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        # The leader after the grace period, and what outlives it: uvicorn workers, and task
        # runners, which Airflow puts in process groups of their own.
        kill_tree(pid)
    components = instance.components if instance else COMPONENTS
    for component in components:
        (pid_dir(home) / f"{component}.pid").unlink(missing_ok=True)
    _instance_file(home).unlink(missing_ok=True)
    return [c for c in reversed(components) if c in running]


def stop_component(home: Path, component: str, *, lose_host: bool = False) -> None:
    """Stop one component: TERM its process group, KILL what is left after the grace period.

    :param lose_host: a test's fault instead: SIGKILL at once the component and every
        process below it, its running tasks too, as when its machine is lost.
    """
    pid = running_components(home).get(component)
    if pid is None:
        raise RuntimeError(f"{component} is not running in {home}")
    if not lose_host:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while not _exited(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    kill_tree(pid)
    while not _exited(pid):
        time.sleep(0.1)



# --------------------------------------------------------------------------- starting


def choose_port(requested: int | None = None) -> int:
    """``requested`` (or ``RETENTION_UI_PORT``) when free; else 8080, or the next free port up to 8099."""
    from devservers.swift import PORT as SWIFT_PORT

    requested = requested or (int(os.environ[PORT_ENV]) if os.environ.get(PORT_ENV) else None)
    if requested is not None:
        if requested == SWIFT_PORT:
            raise RuntimeError(f"port {requested} is the Swift proxy's (S3 store): choose another {PORT_ENV}")
        if not port_free(requested):
            raise RuntimeError(f"port {requested} is taken: set {PORT_ENV} to a free port")
        return requested
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 20):
        if port != SWIFT_PORT and port_free(port):
            if port != DEFAULT_PORT:
                say(f"port {DEFAULT_PORT} is taken; using {port} (set {PORT_ENV} to choose)")
            return port
    raise RuntimeError(f"no free port in {DEFAULT_PORT}-{DEFAULT_PORT + 19}: set {PORT_ENV}")


def _endpoints() -> dict[str, Endpoint]:
    endpoints = load_endpoints()
    if set(endpoints) >= {"mariadb", "redis", "s3", "elasticsearch"}:
        return endpoints
    from devservers.servers import ensure_all

    return ensure_all()


WORKER_HOSTNAME_ENV = "RETENTION_WORKER_HOSTNAME"


def metadata_db_url(instance: Instance) -> str:
    """The metadata DB's SQLAlchemy URL: the cluster's PostgreSQL, else SQLite in the home."""
    home = Path(instance.home)
    db = instance.metadata_db
    if not db:
        # Four processes write to one SQLite file: WAL (set in prepare) and a 60 s busy timeout.
        return f"sqlite:///{home / 'airflow.db'}?timeout=60"
    password = quote(shared_secrets(home)["metadata_db_password"], safe="")
    return f"postgresql+psycopg2://{db['user']}:{password}@{db['host']}:{db['port']}/{db['database']}"


def component_env(instance: Instance, component: str | None = None) -> dict[str, str]:
    """The whole environment of a component: nothing inherited from ``AIRFLOW__*`` or
    ``AIRFLOW_CONN_*``, so the instance runs over the namespace's servers (or what
    ``extra_env`` names) and nothing else."""
    home = Path(instance.home)
    ns = connections.DEMO if instance.namespace == "demo" else connections.TEST
    shared = shared_secrets(home)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env = {
        **base,
        **connections.airflow_connections(_endpoints(), ns),
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": str(PROJECT_ROOT) + (os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else ""),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url(instance),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": instance.executor,
        "AIRFLOW__CORE__PARALLELISM": "4" if instance.executor == "LocalExecutor" else "16",  # the default (32) forks 32
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": os.environ.get(USERS_ENV, DEFAULT_USERS),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{instance.base_url}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": shared["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": shared["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": shared["secret_key"],
        "AIRFLOW__API__BASE_URL": instance.base_url,
        # Both log servers default to fixed ports (8793, 8794), which another Airflow may hold.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(instance.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(instance.triggerer_log_port),
    }
    if instance.workers:
        env |= {
            "AIRFLOW__CELERY__BROKER_URL": instance.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_db_url(instance).replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        }
    if component in instance.workers:
        # Each worker is its own "host": its log server's port, and the name its task
        # instances record (a one-machine stand-in for a worker per host).
        env |= {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(instance.workers[component]),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devservers.worker_host.hostname",
            WORKER_HOSTNAME_ENV: component,
        }
    return env | extra_env(home)


#: Task slots per Celery worker; with two workers, as many as the store pools hold in all.
WORKER_CONCURRENCY = 4


def _argv(component: str, instance: Instance) -> list[str]:
    argv = [sys.executable, "-m", "airflow", component]
    if component == "api-server":
        argv += ["--host", "127.0.0.1", "--port", str(instance.port), "--workers", "1"]
    if component in instance.workers:
        argv = [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{component}@%h",
                "--concurrency", str(WORKER_CONCURRENCY)]
    return argv


PREPARE = """
from devservers.airflow_local import prepare_metadata_db
from include.retention.ledger.migrations import migrate
prepare_metadata_db()
migrate()
"""


def prepare(instance: Instance, env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the store pools (idempotent), and make sure the
    namespace's ledger exists, so that the dashboard has something to read."""
    home = Path(instance.home)
    result = subprocess.run([sys.executable, "-c", PREPARE], env=env, cwd=home, capture_output=True, text=True,
                            timeout=600)
    log = ui_dir(home) / "logs" / "prepare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"preparing {home} failed (exit {result.returncode}); see {log}:\n"
                           + "\n".join(result.stderr.splitlines()[-15:]))
    if not instance.metadata_db:
        with sqlite3.connect(home / "airflow.db") as db:
            db.execute("PRAGMA journal_mode=WAL")


def health(base_url: str) -> dict[str, str] | None:
    """Component -> status from the health endpoint, or None while it does not answer."""
    try:
        with urllib.request.urlopen(base_url + HEALTH_PATH, timeout=5) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.HTTPError):
        return None
    return {key: str((body.get(key) or {}).get("status")) for key in HEALTH_KEYS}


def log_size(home: Path, component: str) -> int:
    path = log_path(home, component)
    return path.stat().st_size if path.exists() else 0


def _worker_ready(home: Path, worker: str, since: int) -> bool:
    """Celery logs ``<name>@<host> ready.`` once the worker consumes; only what was logged
    after ``since`` (the log is appended to across restarts) counts."""
    path = log_path(home, worker)
    if not path.exists():
        return False
    with open(path, "rb") as log:
        log.seek(since)
        text = log.read()
    return f"{worker}@".encode() in text and b" ready." in text


def wait_until_healthy(instance: Instance, timeout: float = START_TIMEOUT, *,
                       log_offsets: dict[str, int] | None = None) -> None:
    """Until every component runs and reports healthy (Celery workers: until they consume)."""
    home = Path(instance.home)
    deadline = time.monotonic() + timeout
    last: dict[str, str] | None = None
    offsets = log_offsets or {}
    while time.monotonic() < deadline:
        gone = [c for c in instance.components if c not in running_components(home)]
        if gone:
            raise RuntimeError(f"{gone[0]} exited; the end of its log ({log_path(home, gone[0])}):\n"
                               + _tail(log_path(home, gone[0])))
        last = health(instance.base_url)
        workers_ready = all(_worker_ready(home, w, offsets.get(w, 0)) for w in instance.workers)
        if last and all(status == "healthy" for status in last.values()) and workers_ready:
            return
        time.sleep(1)
    raise RuntimeError(f"not healthy within {timeout:.0f} s (health: {last}); logs under {ui_dir(home) / 'logs'}")


def start_component(instance: Instance, component: str) -> None:
    """Start one component of the instance (again, after a fault) and record its pid."""
    home = Path(instance.home)
    pid = start(component, _argv(component, instance), log=log_path(home, component), cwd=home,
                env=component_env(instance, component), pid_dir=pid_dir(home))
    instance.started[component] = process_start_time(pid) or 0
    _instance_file(home).write_text(json.dumps(asdict(instance), indent=2))


def rest(instance: Instance, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    """One call to the instance's REST API: (status, decoded JSON body)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(instance.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def admin_token(instance: Instance) -> str:
    """A bearer token of the first admin user (``POST /auth/token``)."""
    users = os.environ.get(USERS_ENV, DEFAULT_USERS).split(",")
    admin = next(u.split(":")[0] for u in users if u.endswith(":admin"))
    status, body = rest(instance, "POST", "/auth/token",
                        {"username": admin, "password": passwords(Path(instance.home)).get(admin, "")})
    if status not in (200, 201) or not isinstance(body, dict):
        raise RuntimeError(f"could not log in as {admin}: {status} {body}")
    return str(body["access_token"])


def unpause_requests_dag(instance: Instance, timeout: float = START_TIMEOUT) -> None:
    """Unpause ``deletion_requests`` once the dag-processor has parsed it, so that a run
    triggered in the UI runs. It has no schedule, so this starts nothing by itself; the
    daily DAGs stay paused."""
    from include.retention.request_states import REQUESTS_DAG_ID

    token = admin_token(instance)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = rest(instance, "GET", f"/api/v2/dags/{REQUESTS_DAG_ID}", token=token)
        if status == 200:
            if isinstance(body, dict) and body.get("is_paused"):
                status, body = rest(instance, "PATCH", f"/api/v2/dags/{REQUESTS_DAG_ID}", {"is_paused": False}, token)
                if status != 200:
                    raise RuntimeError(f"could not unpause {REQUESTS_DAG_ID}: {status} {body}")
            return
        time.sleep(1)
    raise RuntimeError(f"{REQUESTS_DAG_ID} was not parsed within {timeout:.0f} s; see {log_path(Path(instance.home), 'dag-processor')}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@dataclass(frozen=True)
class CeleryCluster:
    """What makes an instance a cluster: its workers, the PostgreSQL metadata DB (host, port,
    database, user; the password is the home's ``metadata_db_password``) and the broker."""

    workers: int
    metadata_db: dict[str, object]
    broker_url: str


def up(home: Path, *, namespace: str = "demo", port: int | None = None, celery: CeleryCluster | None = None,
       extra: dict[str, str] | None = None, unpause: bool = True) -> Instance:
    """Start the components in ``home`` (or find them running) and wait until healthy.

    :param celery: run the CeleryExecutor with these workers, database and broker (else the
        LocalExecutor on SQLite).
    :param extra: added to every component's environment, and kept for a restart.
    :param unpause: unpause ``deletion_requests`` once it is parsed.
    """
    home = home.resolve()
    running = running_components(home)
    current = load_instance(home)
    if current and len(running) == len(current.components) and health(current.base_url) \
            and (current.executor == "CeleryExecutor") == (celery is not None):
        say(f"already running (pids {', '.join(str(p) for p in running.values())})")
        return current
    if running:
        say(f"restarting: only {', '.join(running)} of the components were running")
        down(home)
    instance = Instance(str(home), choose_port(port), namespace, spare_port(), spare_port())
    if celery is not None:
        instance = Instance(
            str(home), instance.port, namespace, instance.worker_log_port, instance.triggerer_log_port,
            executor="CeleryExecutor", workers={f"worker-{n}": spare_port() for n in range(1, celery.workers + 1)},
            metadata_db=dict(celery.metadata_db), broker_url=celery.broker_url,
        )
    _extra_env_file(home).unlink(missing_ok=True)
    if extra:
        _write_private(_extra_env_file(home), dict(extra))
    env = component_env(instance)
    ns = connections.DEMO if namespace == "demo" else connections.TEST
    # The components connect as this account (component_env), and prepare migrates the ledger as it.
    mysql_users.ensure_store_user(_endpoints()["mariadb"], ns.mysql_database, ns.ledger_database)
    say(f"preparing {home} (metadata DB, pools, the {namespace} ledger) ...")
    prepare(instance, env)
    offsets = {component: log_size(home, component) for component in instance.workers}
    for component in instance.components:
        start_component(instance, component)
    say(f"started {', '.join(instance.components)}; waiting for {instance.base_url}{HEALTH_PATH} ...")
    try:
        wait_until_healthy(instance, log_offsets=offsets)
        if unpause:
            unpause_requests_dag(instance)
    except RuntimeError:
        down(home)
        raise
    return instance


def describe(instance: Instance) -> list[str]:
    """What a person needs to open the instance: address, login, dashboard, logs, stop."""
    home = Path(instance.home)
    users = passwords(home)
    login = "; ".join(f"{user} / {password}" for user, password in users.items()) or "(no passwords yet)"
    base = instance.base_url
    return [
        f"Airflow UI:  {base}/",
        f"login:       {login}  (from {home / PASSWORDS_FILE})",
        f"dashboard:   {base}{DASHBOARD_UI_ROUTE}  (\"Retention\" in the UI's navigation;"
        f" the page alone: {base}{DASHBOARD_PREFIX}/)",
        f"data:        the {instance.namespace} servers and ledger; trigger deletion_requests from its page;"
        " the daily DAGs stay paused until you unpause them",
        f"logs:        {ui_dir(home) / 'logs'}/",
        "stop:        " + ("./scripts/cluster.sh down" if instance.workers else "./scripts/stop.sh"),
    ]


def default_home() -> Path:
    """``AIRFLOW_HOME`` (which ``scripts/env.sh`` sets), else the demo's home."""
    return Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / ".run" / "airflow-demo").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devservers.airflow_ui", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--namespace", choices=["demo", "test"], default="demo")
    parser.add_argument("--port", type=int, default=None, help=f"default: ${PORT_ENV}, else 8080 if free")
    args = parser.parse_args(argv)
    home = default_home()
    if args.command == "down":
        stopped = down(home)
        say("stopped: " + (", ".join(stopped) if stopped else f"nothing (no Airflow UI was started in {home})"))
        return 0
    if args.command == "status":
        running, instance = running_components(home), load_instance(home)
        if not running or instance is None:
            say(f"not running in {home}")
            return 1
        say(f"running in {home}: " + ", ".join(f"{c} (pid {p})" for c, p in running.items()))
        for line in describe(instance):
            print("  " + line)
        return 0
    try:
        instance = up(home, namespace=args.namespace, port=args.port)
    except RuntimeError as exc:
        say(f"FAILED: {exc}")
        return 1
    say(f"Airflow is up in {home}")
    for line in describe(instance):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
