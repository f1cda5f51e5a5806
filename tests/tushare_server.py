"""A small Tushare-Pro-compatible HTTP server on loopback for tests and benchmarks.

Point the real client at it: ``pro = tushare.pro_api(server.token)`` then
``pro._DataApi__http_url = server.url``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import numpy as np
import pandas as pd

WRONG_TOKEN_MSG = "您的token不对，请确认。"
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """One request received by the server."""

    api_name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """An injected failure; build one with the class methods."""

    kind: str  # "code" | "http" | "empty" | "delay"
    error_code: int = 0
    msg: str = ""
    status: int = HTTPStatus.OK
    seconds: float = 0.0
    api_name: str | None = None  # default target; inject(api_name=...) overrides it

    @classmethod
    def code(cls, code: int, msg: str) -> Fault:
        """HTTP 200 with a non-zero Tushare code: the client raises Exception(msg)."""
        return cls("code", error_code=code, msg=msg)

    @classmethod
    def http(cls, status: int) -> Fault:
        """A bare HTTP error status: the client returns an empty DataFrame."""
        return cls("http", status=status)

    @classmethod
    def empty(cls) -> Fault:
        """A successful answer with fields but no items."""
        return cls("empty")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep, then answer normally (exercises client timeouts)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def rate_limit(cls, api_name: str | None = None, per_minute: int = 200) -> Fault:
        """Tushare's per-minute quota error (code 40203), aimed at api_name by default."""
        msg = (
            f"抱歉，您每分钟最多访问该接口{per_minute}次，权限的具体详情访问："
            "https://tushare.pro/document/1?doc_id=108。"
        )
        return cls("code", error_code=40203, msg=msg, api_name=api_name)


class TushareServer:
    """Serves ``tables`` (api name -> DataFrame) on 127.0.0.1 from a daemon thread."""

    def __init__(
        self, tables: dict[str, pd.DataFrame], token: str = "test-token", max_rows: int = 2000
    ) -> None:
        self.tables = dict(tables)
        self.token = token
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._faults: deque[tuple[str | None, Fault]] = deque()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``; the client posts to ``url/api_name``."""
        if self._httpd is None:
            raise RuntimeError("TushareServer is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
            self._httpd.app = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="tushare-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay fault
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2)
        self._httpd = self._thread = None

    @property
    def calls(self) -> list[Call]:
        """A snapshot of the calls received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def count(self, api_name: str | None = None) -> int:
        """Number of calls received, optionally for one api only."""
        with self._lock:
            return sum(api_name is None or c.api_name == api_name for c in self._calls)

    def inject(self, fault: Fault, api_name: str | None = None, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` calls to ``api_name`` (None: any api)."""
        target = api_name if api_name is not None else fault.api_name
        with self._lock:
            self._faults.extend([(target, fault)] * times)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def respond(self, request: Mapping[str, Any], path_api: str = "") -> tuple[int, Any]:
        """Answer one decoded request: (HTTP status, JSON payload or plain-text body)."""
        api_name = str(request.get("api_name") or path_api)
        params = dict(request.get("params") or {})
        fields = request.get("fields") or ""
        with self._lock:
            self._calls.append(Call(api_name, params))
            fault = self._take_fault(api_name)
        if fault is not None and fault.kind == "delay":
            self._stopping.wait(fault.seconds)
        elif fault is not None:
            return self._fault_response(fault, api_name, fields)
        if request.get("token") != self.token:
            return HTTPStatus.OK, _error(40101, WRONG_TOKEN_MSG)
        table = self.tables.get(api_name)
        if table is None:
            return HTTPStatus.OK, _error(40102, f"接口名 {api_name} 不存在，请指定正确的接口名。")
        try:
            offset = max(_as_int(params.get("offset"), 0), 0)
            limit = min(max(_as_int(params.get("limit"), self.max_rows), 0), self.max_rows)
        except ValueError as exc:
            return HTTPStatus.OK, _error(40001, f"参数错误：{exc}")
        rows = _FILTERS.get(api_name, _filter_by_columns)(table, params)
        page = rows.iloc[offset : offset + limit]
        columns = _select(list(page.columns), fields)
        return HTTPStatus.OK, _ok(columns, _items(page[columns]))

    def _take_fault(self, api_name: str) -> Fault | None:
        """Pop the oldest queued fault that targets ``api_name``; caller holds the lock."""
        for index, (target, fault) in enumerate(self._faults):
            if target is None or target == api_name:
                del self._faults[index]
                return fault
        return None

    def _fault_response(self, fault: Fault, api_name: str, fields: Any) -> tuple[int, Any]:
        if fault.kind == "http":
            return fault.status, f"{fault.status} injected fault"
        if fault.kind == "code":
            return HTTPStatus.OK, _error(fault.error_code, fault.msg)
        table = self.tables.get(api_name)  # "empty": the usual fields, no items
        known = list(table.columns) if table is not None else _field_list(fields)
        return HTTPStatus.OK, _ok(_select(known, fields), [])


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: TushareServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # e.g. client timed out
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._send(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
            return
        self._send(*self.server.app.respond(request, self.path.rsplit("/", 1)[-1]))

    def _send(self, status: int, payload: Any) -> None:
        if isinstance(payload, str):
            body, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            body, ctype = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""


def _ok(fields: list[str], items: list[list[Any]]) -> dict[str, Any]:
    return {"code": 0, "msg": "", "data": {"fields": fields, "items": items}}


def _error(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": None}


def _as_int(value: Any, default: int) -> int:
    return default if value is None or value == "" else int(value)


def _field_list(fields: Any) -> list[str]:
    return [f.strip() for f in str(fields or "").split(",") if f.strip()]


def _select(columns: list[str], fields: Any) -> list[str]:
    """The requested fields that exist, in request order; all columns if none requested."""
    wanted = _field_list(fields)
    return [f for f in wanted if f in columns] if wanted else columns


def _jsonable(value: Any) -> Any:
    """Python scalars for JSON: numpy types unwrapped, NaN/None/NaT/NA as null."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value


def _items(frame: pd.DataFrame) -> list[list[Any]]:
    return [[_jsonable(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def _eq(df: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    """Rows whose ``column`` equals ``value`` (a comma-separated value means any of them)."""
    if value is None or value == "" or column not in df.columns:
        return df
    wanted = [v.strip() for v in str(value).split(",")]
    return df[df[column].astype(str).isin(wanted)]


def _between(df: pd.DataFrame, column: str, start: Any, end: Any) -> pd.DataFrame:
    """Rows with ``start <= column <= end`` (YYYYMMDD strings; empty bounds are open)."""
    if column not in df.columns or not (start or end):
        return df
    dates = df[column].astype(str)
    return df[(dates >= str(start or "")) & (dates <= str(end or "99999999"))]


def _sort(df: pd.DataFrame, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    """Stable sort, skipped when the table lacks one of the ``by`` columns."""
    if not set(by) <= set(df.columns):
        return df
    return df.sort_values(by, ascending=ascending, kind="mergesort")


def _fund_basic(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    for column in ("market", "status", "ts_code"):
        df = _eq(df, column, params.get(column))
    return df


def _trade_cal(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    df = _eq(df, "exchange", params.get("exchange") or "SSE")
    df = _eq(df, "is_open", params.get("is_open"))
    df = _between(df, "cal_date", params.get("start_date"), params.get("end_date"))
    return _sort(df, ["cal_date"], [False])


def _daily(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    """fund_daily / fund_adj: by trade_date, or by ts_code list within a date range."""
    df = _eq(df, "trade_date", params.get("trade_date"))
    df = _eq(df, "ts_code", params.get("ts_code"))
    df = _between(df, "trade_date", params.get("start_date"), params.get("end_date"))
    return _sort(df, ["ts_code", "trade_date"], [True, False])


def _filter_by_columns(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Fallback for other tables: equality on every param that names a column."""
    for column, value in params.items():
        df = _eq(df, column, value)
    return df


_FILTERS: dict[str, Callable[[pd.DataFrame, Params], pd.DataFrame]] = {
    "fund_basic": _fund_basic,
    "trade_cal": _trade_cal,
    "fund_daily": _daily,
    "fund_adj": _daily,
}
