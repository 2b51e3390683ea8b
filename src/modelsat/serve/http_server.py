"""How uvicorn runs the proxy: connection timeouts uvicorn lacks, and the options `modelsat serve` passes.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a connection that never sends a
complete request head (idle from the start, or half-sent headers, a byte at a time) stays open for as long as
the client likes. `guarded_h11(s)` closes such a connection after `s` seconds.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from modelsat.serve.config import ServeConfig


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


def guarded_h11(head_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head is incomplete after `head_timeout_s`."""
    return type("GuardedH11Protocol", (_HeadTimeoutH11,), {"head_timeout_s": head_timeout_s})


def uvicorn_options(cfg: ServeConfig) -> dict:
    """Keyword arguments for uvicorn.run / uvicorn.Config that the proxy's config decides."""
    return {"http": guarded_h11(cfg.server.header_timeout_s), "timeout_keep_alive": cfg.server.keep_alive_s,
            "proxy_headers": False, "server_header": False}
