"""gunicorn's settings for the container, read from the environment.

    gunicorn -c docker/gunicorn.conf.py invest_alchemy.wsgi:application

| variable | default | |
| --- | --- | --- |
| PORT | 8000 | listen on 0.0.0.0:PORT |
| GUNICORN_WORKERS | 2 | processes |
| GUNICORN_THREADS | 4 | threads per process (gthread worker) |
| GUNICORN_TIMEOUT | 60 | seconds a request may take before its worker is restarted |
| GUNICORN_GRACEFUL_TIMEOUT | 20 | seconds running requests get to finish on SIGTERM |
| GUNICORN_KEEPALIVE | 5 | seconds an idle keep-alive connection is kept |
| GUNICORN_MAX_REQUESTS | 10000 | requests after which a worker is replaced (0: never) |
| GUNICORN_MAX_REQUESTS_JITTER | a tenth of it | random extra, so workers do not restart together |
| GUNICORN_LOG_LEVEL | info | debug, info, warning, error, critical |
| GUNICORN_PRELOAD | 0 | 1: import the app once in the master before forking |
| GUNICORN_CONTROL_SOCKET | (off) | a path: enable gunicorn's control socket (`gunicornc`) there |

Anything else can still be given with GUNICORN_CMD_ARGS (it wins over this file),
and FORWARDED_ALLOW_IPS is read by gunicorn itself. A bad value stops the start
with one line naming the variable, e.g.
`gunicorn.conf.py: GUNICORN_WORKERS must be a whole number from 1 to 64, not 'two'`.

`gunicorn -c docker/gunicorn.conf.py --print-config` shows every value it gives.
"""

from __future__ import annotations

import os


def _fail(message: str) -> None:
    # SystemExit is not an Exception: gunicorn's config loader lets it through,
    # so the start stops with this one line (exit status 1) and no traceback.
    raise SystemExit(f"gunicorn.conf.py: {message}")


def _int(name: str, default: int, lowest: int, highest: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.isascii() and raw.isdigit() and lowest <= int(raw) <= highest:
        return int(raw)
    _fail(f"{name} must be a whole number from {lowest} to {highest}, not {raw!r}")
    return default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    _fail(f"{name} must be 1 or 0 (true/false), not {os.environ[name]!r}")
    return default


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip().lower() or default
    if raw not in choices:
        _fail(f"{name} must be one of {', '.join(choices)}, not {os.environ[name]!r}")
    return raw


wsgi_app = "invest_alchemy.wsgi:application"
proc_name = "invest-alchemy"

bind = [f"0.0.0.0:{_int('PORT', 8000, 1, 65535)}"]
workers = _int("GUNICORN_WORKERS", 2, 1, 64)
threads = _int("GUNICORN_THREADS", 4, 1, 256)
# Threads park idle keep-alive connections instead of holding a thread each.
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 60, 1, 3600)
# On SIGTERM (docker stop) running requests get this long; compose gives the
# container 30 s before SIGKILL, so keep it below that.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20, 1, 3600)
keepalive = _int("GUNICORN_KEEPALIVE", 5, 0, 3600)

# A worker that leaks memory is replaced after this many requests; the jitter
# spreads the restarts so the workers never all restart at once. High enough
# that a busy site does not keep rebuilding the per-process page cache.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000, 0, 10_000_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10, 0, 10_000_000)

# Off by default: each worker imports Django itself, so nothing opened while
# importing (a database connection, a thread, a random state) is shared by
# forked processes, and a worker replaced by max_requests starts clean. The
# cost is a second or two per worker start and no copy-on-write sharing of
# memory between the few workers; GUNICORN_PRELOAD=1 trades the other way.
preload_app = _bool("GUNICORN_PRELOAD", False)

# The workers' heartbeat files: on tmpfs, never on the container's overlay
# disk, where a slow write can make a healthy worker look dead.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# One line per request on stdout; gunicorn's own messages on stderr.
# %(M)s is the time taken in milliseconds; the X-Forwarded-For column names the
# client when a reverse proxy fronts the site ("-" otherwise).
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'
loglevel = _choice("GUNICORN_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical"))

# gunicorn's control socket (for `gunicornc`) defaults to ~/.gunicorn/gunicorn.ctl,
# one path per user: a second gunicorn of the same user takes it over. Off
# unless a path is given.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True
