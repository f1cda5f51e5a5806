"""The container, checked without a container engine.

- `docker/entrypoint.sh` runs on this machine as in the image: on a copy of the
  project made like the image's `COPY . .` (`.dockerignore` honoured, so no
  static files are collected yet: the entrypoint collects them, as on a
  mounted checkout), against a scratch database, with the venv first on PATH.
  PostgreSQL when DATABASE_URL names one (a database named after it plus a
  random suffix, created and dropped here), else SQLite in a temporary folder.
- `docker/gunicorn.conf.py` and `docker/healthcheck.py` on their own.
- `docker-compose.yml` rendered by Debian's `docker-compose` (1.29, works
  without an engine), installed with apt-get when running as root.
- The Dockerfile read for what cannot run here.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import environ
import pytest

from tests.base import unavailable
from tests.processes import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent  # gunicorn, python: what the image's PATH gives
START_WITHIN = 120  # seconds: migrations on a new database, collectstatic, gunicorn
STOP_WITHIN = 40  # gunicorn's graceful timeout (20 s) and then some
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
DAILY = "daily signals"  # the schedule `manage.py setup_schedules` makes


# --- the entrypoint on this machine -----------------------------------------


def dockerignored(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if fnmatch(name, pattern[3:]):
                return True
        elif fnmatch(relative, pattern):
            return True
    return False


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The project as the image's /app before collectstatic: `COPY . .` minus .dockerignore."""
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    target = tmp_path / "app"

    def ignore(folder: str, names: list[str]) -> list[str]:
        base = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else base + "/"
        return [n for n in names if dockerignored(prefix + n, patterns)]

    shutil.copytree(ROOT, target, ignore=ignore, symlinks=True)
    assert not (target / "staticfiles").exists() and not (target / ".env").exists()
    return target


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty database for the entrypoint, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    config = environ.Env.db_url_config(url)
    name = f"{config['NAME']}_{secrets.token_hex(4)}"  # e.g. ia_helper_ct_1f2e3d4c
    params = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    params = {k: v for k, v in params.items() if v is not None}
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params)
    except psycopg.OperationalError as e:
        unavailable(f"PostgreSQL at {config['HOST']}:{config['PORT']} is not reachable: {e}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlsplit(url)._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_env(database_url: str, port: int, home: Path) -> dict[str, str]:
    """What the container's .env gives, and nothing of this process's settings."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("PG")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        SITE_URL=f"http://127.0.0.1:{port}",
        PORT=str(port),
        GUNICORN_WORKERS="1",  # a shared machine: one process, two threads is enough
        GUNICORN_THREADS="2",
        Q_WORKERS="1",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def entrypoint(app: Path, role: str, env: dict[str, str], log: Path) -> ServiceProcess:
    """`docker/entrypoint.sh ROLE`; gunicorn's or qcluster's children share its group."""
    command = [str(app / "docker" / "entrypoint.sh"), role]
    label = f"entrypoint.sh {role}"
    return ServiceProcess(command, cwd=app, env=env, log=log, label=label, stop_within=STOP_WITHIN)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for_http(url: str, server: ServiceProcess) -> int:
    """The status of the first answer gunicorn gives at url (any status)."""
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        assert server.running(), (
            f"the entrypoint exited ({server.proc.returncode}){server.output()}"
        )
        try:
            return fetch(url)[0]
        except (OSError, urllib.error.URLError):
            time.sleep(0.25)
    pytest.fail(f"nothing answered at {url} within {START_WITHIN} s{server.output()}")


def wait_for_output(process: ServiceProcess, *needles: str) -> None:
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        text = process.text()
        if all(n in text for n in needles):
            return
        assert process.running(), (
            f"the entrypoint exited ({process.proc.returncode}){process.output()}"
        )
        time.sleep(0.25)
    pytest.fail(f"no {needles} within {START_WITHIN} s{process.output()}")


def check_health(base: str, server: ServiceProcess) -> None:
    """/healthz answers 200; the image's HEALTHCHECK script agrees with it."""
    status, headers, body = fetch(base + "/healthz")
    assert status == 200, f"/healthz answered {status}: {body!r}{server.output()}"
    assert json.loads(body)["status"] == "ok", body
    probe = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "healthcheck.py")],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.returncode == 0, (probe, server.output())


def check_pages(base: str, server: ServiceProcess) -> None:
    """A real page, and its stylesheet from the manifest through WhiteNoise."""
    status, _, body = fetch(base + "/")
    assert status == 200, f"/ answered {status}{server.output()}"
    page = body.decode()
    found = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', page)
    assert found, f"no hashed stylesheet link in the home page:\n{page[:2000]}"
    status, headers, css = fetch(base + found.group(1), **{"Accept-Encoding": "gzip"})
    assert status == 200 and css, f"{found.group(1)} answered {status}{server.output()}"
    assert headers["Content-Type"].startswith("text/css"), headers
    assert headers.get("Content-Encoding") == "gzip", headers  # compressed at collectstatic
    assert "immutable" in headers.get("Cache-Control", ""), headers
    assert fetch(base + "/robots.txt")[0] == 200


def schedules(database_url: str) -> list[tuple[str, str]]:
    query = "SELECT name, func FROM django_q_schedule ORDER BY name"
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(environ.Env.db_url_config(database_url)["NAME"]) as db:
            return list(db.execute(query))
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as db:
        return list(db.execute(query))


@pytest.mark.slow
def test_the_web_server_migrates_collects_serves_and_stops(app_dir, database_url, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = container_env(database_url, port, tmp_path)
    with entrypoint(app_dir, "web", env, tmp_path / "web.log") as web:
        wait_for_http(base + "/healthz", web)
        text = web.text()
        assert "Applying signals.0001_initial... OK" in text, web.output()
        assert "collecting static files" in text, web.output()
        assert (app_dir / "staticfiles" / "staticfiles.json").is_file(), web.output()
        check_health(base, web)
        check_pages(base, web)
        assert web.stop() == 0, f"gunicorn did not stop cleanly on SIGTERM{web.output()}"
        assert not web.leftovers(), f"processes outlived gunicorn{web.output()}"
    text = web.text()
    # One access line per request on stdout: address, forwarded-for, time, request,
    # status, size, milliseconds, referrer, agent.
    access = re.compile(r'^127\.0\.0\.1 - \[[^]]+\] "GET / HTTP/1\.1" 200 \d+ \d+ms "-" "Python')
    assert any(access.match(line) for line in text.splitlines()), web.output()
    assert "Traceback" not in text and "Shutting down: Master" in text, web.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    # A restart: nothing to migrate or collect again.
    with entrypoint(app_dir, "web", env, tmp_path / "web-again.log") as again:
        assert wait_for_http(base + "/healthz", again) == 200, again.output()
        assert "No migrations to apply." in again.text(), again.output()
        assert "collecting static files" not in again.text(), again.output()
        assert again.stop() == 0, again.output()
    # Any other command runs after the migrations, in place of the entrypoint.
    other = subprocess.run(
        [str(app_dir / "docker" / "entrypoint.sh"), "python", "-c", "print('anything else')"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_WITHIN,
    )
    assert other.returncode == 0, other.stdout + other.stderr
    assert other.stdout.rstrip().endswith("anything else"), other.stdout + other.stderr


@pytest.mark.slow
def test_web_and_worker_start_together_on_a_new_database(app_dir, database_url, tmp_path):
    """As compose starts them: both migrate on start, one at a time."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = container_env(database_url, port, tmp_path)
    with (
        entrypoint(app_dir, "worker", env, tmp_path / "worker.log") as worker,
        entrypoint(app_dir, "web", env, tmp_path / "web.log") as web,
    ):
        wait_for_output(worker, "Operations to perform:", "Q Cluster", "running.")
        assert f"Schedule '{DAILY}' created" in worker.text(), worker.output()
        assert schedules(database_url) == [(DAILY, "signals.tasks.daily_signals")]
        wait_for_http(base + "/healthz", web)
        check_pages(base, web)
        # The worker serves nothing and never needs static files.
        assert "collecting static files" not in worker.text(), worker.output()
        assert worker.stop() == 0, f"qcluster did not stop cleanly on SIGTERM{worker.output()}"
        assert not worker.leftovers(), f"processes outlived qcluster{worker.output()}"
        assert web.stop() == 0, f"gunicorn did not stop cleanly on SIGTERM{web.output()}"
    for process in (worker, web):
        assert "Traceback" not in process.text(), process.output()
        assert " ERROR " not in process.text(), process.output()


# --- gunicorn's configuration and the health probe --------------------------


def gunicorn(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in INHERITED}
    clean.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONDONTWRITEBYTECODE="1",
        **env,
    )
    return subprocess.run(
        [str(VENV_BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed_config(tmp_path: Path, **env: str) -> dict[str, str]:
    result = gunicorn(
        "--print-config",  # loads the app too: DEBUG and a throwaway database
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **env,
    )
    assert result.returncode == 0, result.stderr
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_gunicorn_reads_its_settings_from_the_environment(tmp_path):
    defaults = printed_config(tmp_path)
    assert defaults["bind"] == "['0.0.0.0:8000']"
    assert (defaults["workers"], defaults["threads"], defaults["timeout"]) == ("2", "4", "60")
    assert defaults["worker_class"] == "gthread"
    assert (defaults["accesslog"], defaults["errorlog"]) == ("-", "-")
    assert int(defaults["graceful_timeout"]) < 30  # compose's stop_grace_period for web
    assert int(defaults["max_requests"]) > 0 and int(defaults["max_requests_jitter"]) > 0
    assert defaults["preload_app"] == "False"
    assert defaults["control_socket_disable"] == "True"
    if os.path.isdir("/dev/shm"):
        assert defaults["worker_tmp_dir"] == "/dev/shm"
    custom = printed_config(
        tmp_path,
        PORT="9123",
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="8",
        GUNICORN_TIMEOUT="90",
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_PRELOAD="1",
    )
    assert custom["bind"] == "['0.0.0.0:9123']"
    assert (custom["workers"], custom["threads"], custom["timeout"]) == ("3", "8", "90")
    assert (custom["max_requests"], custom["max_requests_jitter"]) == ("0", "0")
    assert custom["preload_app"] == "True"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GUNICORN_WORKERS": "two"}, "GUNICORN_WORKERS must be a whole number from 1 to 64"),
        ({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS must be a whole number from 1 to 64"),
        ({"GUNICORN_THREADS": "-4"}, "GUNICORN_THREADS must be a whole number from 1 to 256"),
        ({"GUNICORN_TIMEOUT": "60s"}, "GUNICORN_TIMEOUT must be a whole number from 1 to 3600"),
        ({"PORT": "99999"}, "PORT must be a whole number from 1 to 65535, not '99999'"),
        ({"GUNICORN_PRELOAD": "maybe"}, "GUNICORN_PRELOAD must be 1 or 0"),
        ({"GUNICORN_LOG_LEVEL": "loud"}, "GUNICORN_LOG_LEVEL must be one of debug, info"),
    ],
)
def test_a_bad_gunicorn_value_stops_the_start_with_one_line(env, message):
    result = gunicorn("invest_alchemy.wsgi:application", **env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"gunicorn.conf.py: {message}"), result.stderr
    assert "Traceback" not in result.stderr


def load_healthcheck(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no docker/__pycache__
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "docker/healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def answering(status: int, location: str = "", delay: float = 0) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(b'{"status": "..."}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_probe_passes_only_on_200(monkeypatch):
    probe = load_healthcheck(monkeypatch)
    monkeypatch.setattr(probe, "TIMEOUT", 0.5)
    with answering(200) as url:
        assert probe.main(["healthcheck.py", url]) == 0
    with answering(503) as url:
        assert probe.main(["healthcheck.py", url]) == 1
    with answering(301, location="https://127.0.0.1/healthz") as url:
        assert probe.main(["healthcheck.py", url]) == 1  # a redirect is not followed
    with answering(200, delay=1) as url:
        assert probe.main(["healthcheck.py", url]) == 1  # too slow
    assert probe.main(["healthcheck.py", f"http://127.0.0.1:{free_port()}/healthz"]) == 1


# --- docker-compose.yml -------------------------------------------------------


def installed_compose() -> str | None:
    """Debian's docker-compose; as root, apt-get installs it when it is missing."""
    if shutil.which("docker-compose"):
        return shutil.which("docker-compose")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(
            # Not the engine it recommends (docker.io): `config` needs none.
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"],
            env=env,
            check=False,
            capture_output=True,
        )
    return shutil.which("docker-compose")


@pytest.fixture(scope="module")
def compose() -> str:
    path = installed_compose()
    if path is None:
        unavailable("docker-compose is not installed here: apt-get install docker-compose")
    return path


def yaml_to_data(compose_path: str, text: str) -> dict:
    """Parse `config` output: with PyYAML if this venv has it, else with the
    interpreter of Debian's docker-compose (a Python script that needs python3-yaml)."""
    try:
        import yaml

        return yaml.safe_load(text)
    except ImportError:
        pass
    first = Path(compose_path).read_bytes()[:200].split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        unavailable(f"cannot parse YAML: no PyYAML here and {compose_path} is not a script")
    interpreter = first[2:].decode().split()
    convert = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    result = subprocess.run(
        [*interpreter, "-c", convert], input=text, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def rendered(compose: str, tmp_path: Path, env: dict[str, str], *args: str) -> dict:
    """`docker-compose [args] config` of the project's compose file with this .env."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k in INHERITED or k == "HOME"}
    result = subprocess.run(
        [compose, *args, "config"],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml_to_data(compose, result.stdout)


def active(config: dict, profiles: set[str] = frozenset()) -> set[str]:
    """Services compose would start: 1.29's `config` also lists those of other profiles."""
    return {
        name
        for name, service in config["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & profiles
    }


def published(service: dict) -> set[tuple[str, str, str]]:
    """(host address, host port, container port), from 1.29's strings or v2's mappings."""
    found = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.add((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
        else:
            parts = port.split("/")[0].split(":")
            found.add((parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", *parts))
    return found


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts, duration
    return sum(float(n) * units[u] for n, u in parts)


MINIMAL_ENV = {"SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "signals.example.com"}
DEV_ENV = {**MINIMAL_ENV, "COMPOSE_PROFILES": "dev", "EMAIL_URL": "smtp://mailpit:1025"}


def test_compose_runs_db_web_and_worker_from_one_image_and_one_env(compose, tmp_path):
    source = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"^version:", source, re.M), "the `version:` key is obsolete"
    config = rendered(compose, tmp_path, MINIMAL_ENV)
    assert active(config) == {"db", "web", "worker"}
    assert set(config["volumes"]) == {"pgdata"}

    db = config["services"]["db"]
    assert db["image"] == "postgres:16"
    volume = db["volumes"][0]
    volume = (
        (volume["source"], volume["target"])
        if isinstance(volume, dict)
        else tuple(volume.split(":")[:2])
    )
    assert volume == ("pgdata", "/var/lib/postgresql/data")
    assert "pg_isready -h 127.0.0.1" in " ".join(db["healthcheck"]["test"])

    web, worker = config["services"]["web"], config["services"]["worker"]
    for service, role in ((web, "web"), (worker, "worker")):
        assert service["build"]["context"] == str(tmp_path / "project")
        assert service["command"] == [role]
        assert service["environment"]["SECRET_KEY"] == "s" * 50  # from the one .env
        assert service["environment"]["DATABASE_URL"].endswith("@db:5432/invest_alchemy")
        assert "EMAIL_URL" not in service["environment"]  # files, unless .env says otherwise
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert service["restart"] == "unless-stopped"
    # Only on loopback: a reverse proxy on the machine fronts it.
    assert published(web) == {("127.0.0.1", "8000", "8000")}
    assert "healthcheck" not in web  # the image's HEALTHCHECK (/healthz) applies
    assert seconds(web["stop_grace_period"]) >= 30
    assert not published(worker)
    check = worker["healthcheck"]
    assert check.get("disable") or check.get("test") == ["NONE"], check
    # A running task (at most Q_TIMEOUT, 1,800 s) is not cut off.
    assert seconds(worker["stop_grace_period"]) > 1800


@pytest.mark.parametrize(
    ("env", "args"),
    [(DEV_ENV, ()), ({**DEV_ENV, "COMPOSE_PROFILES": ""}, ("--profile", "dev"))],
    ids=["COMPOSE_PROFILES in .env", "--profile dev"],
)
def test_the_dev_profile_adds_mailpit_and_the_app_sends_through_it(compose, tmp_path, env, args):
    config = rendered(compose, tmp_path, env, *args)
    assert active(config, {"dev"}) == {"db", "web", "worker", "mailpit"}
    mailpit = config["services"]["mailpit"]
    assert mailpit["image"].split(":")[0] == "axllent/mailpit"
    assert published(mailpit) == {("127.0.0.1", "8025", "8025"), ("127.0.0.1", "1025", "1025")}
    for name in ("web", "worker"):
        assert config["services"][name]["environment"]["EMAIL_URL"] == "smtp://mailpit:1025"


def test_web_can_be_published_elsewhere(compose, tmp_path):
    config = rendered(compose, tmp_path, {**MINIMAL_ENV, "WEB_PUBLISH": "0.0.0.0:8080"})
    assert published(config["services"]["web"]) == {("0.0.0.0", "8080", "8000")}


# --- the Dockerfile -----------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    steps = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps


def test_the_dockerfile_builds_a_non_root_image_with_a_health_check():
    steps = dockerfile()
    keywords = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = [args for k, args in steps if k == "RUN"]

    # TA-Lib from its binary wheel: pip may not compile it, and nothing installs a compiler.
    pip = next(r for r in runs if "pip install" in r)
    assert re.search(r"--only-binary[= ](\S*,)?(TA-Lib|ta-lib|:all:)", pip), pip
    assert not re.search(r"gcc|build-essential|\bmake\b|ta-lib-0|configure", " ".join(runs))
    assert re.search(r"^TA-Lib==", (ROOT / "requirements.txt").read_text(), re.M)

    # Static files collected at build, as root, before switching to the app user.
    collect = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "collectstatic" in a)
    user = max(i for i, k in enumerate(keywords) if k == "USER")
    assert collect < user
    assert steps[user][1] not in {"root", "0", "0:0"}
    assert user < keywords.index("ENTRYPOINT") and user < keywords.index("CMD")

    health = next(a for k, a in steps if k == "HEALTHCHECK")
    assert "--timeout=" in health and "docker/healthcheck.py" in health, health
    assert (ROOT / "docker" / "healthcheck.py").is_file()
    assert steps[keywords.index("ENTRYPOINT")][1] == '["/app/docker/entrypoint.sh"]'
    assert os.access(ROOT / "docker" / "entrypoint.sh", os.X_OK)

    # Secrets and stale static files of a checkout stay out of the image.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "staticfiles", ".venv", ".git"} <= set(ignored)
