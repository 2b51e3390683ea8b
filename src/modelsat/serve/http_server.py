"""How uvicorn runs the proxy: connection timeouts uvicorn lacks, the options `modelsat serve` passes, and
several worker processes (`modelsat serve --workers N`).

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a connection that never sends a
complete request head (idle from the start, or half-sent headers, a byte at a time) stays open for as long as
the client likes. `guarded_h11(s)` closes such a connection after `s` seconds.

With N workers, uvicorn's parent process holds the listening socket and N processes accept from it. Each
worker builds its own app from the config file: its own zoo, router (loaded N times: N times its memory),
HTTP client and connection pool, and circuit breakers (a worker learns an upstream is down from its own
requests only). Prometheus metrics are merged across workers through files in $PROMETHEUS_MULTIPROC_DIR
(a fresh temporary folder unless set), so /metrics on any worker reports the whole proxy.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from modelsat.errors import ModelsatError
from modelsat.serve.config import ServeConfig, load_config

CONFIG_ENV = "MODELSAT_SERVE_CONFIG"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _HeadTimeoutH11(H11Protocol):
    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()          # the request head is complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()             # the next request on this connection has as long

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


class GuardedH11Protocol(_HeadTimeoutH11):
    """The protocol worker processes use (a class they can import); its timeout is set from the config by
    app_from_environment in each worker."""


def guarded_h11(head_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head is incomplete after `head_timeout_s`."""
    return type("GuardedH11Protocol", (_HeadTimeoutH11,), {"head_timeout_s": head_timeout_s})


def uvicorn_options(cfg: ServeConfig) -> dict:
    """Keyword arguments for uvicorn.run / uvicorn.Config that the proxy's config decides."""
    return {"http": guarded_h11(cfg.server.header_timeout_s), "timeout_keep_alive": cfg.server.keep_alive_s,
            "proxy_headers": False, "server_header": False}


def app_from_environment():
    """The proxy for the config file (or zoo folder) named by $MODELSAT_SERVE_CONFIG: what each worker builds."""
    from modelsat.serve.app import make_app
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ModelsatError(f"{CONFIG_ENV} is not set: it names the serve config each worker loads "
                            "(modelsat serve --workers sets it)")
    if Path(path).is_dir():          # `modelsat serve --zoo DIR --workers N`: each worker watches the folder
        from modelsat.serve.zoo_folder import ZooFolderWatch
        watch = ZooFolderWatch(path)
        cfg = watch.load()
        GuardedH11Protocol.head_timeout_s = cfg.server.header_timeout_s
        return make_app(cfg, watch=watch)
    cfg = load_config(path)
    GuardedH11Protocol.head_timeout_s = cfg.server.header_timeout_s
    return make_app(cfg)


def serve_in_workers(config_path: str | os.PathLike, cfg: ServeConfig, host: str, port: int, workers: int,
                     app_factory: str = "modelsat.serve.http_server:app_from_environment",
                     log_level: str = "info", access_log: bool = True) -> None:
    """Serves the config with `workers` processes (uvicorn's supervisor), each calling `app_factory`."""
    import uvicorn
    os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="modelsat-metrics-")
    options = {**uvicorn_options(cfg), "http": GuardedH11Protocol}
    GuardedH11Protocol.head_timeout_s = cfg.server.header_timeout_s
    uvicorn.run(app_factory, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                access_log=access_log, **options)
