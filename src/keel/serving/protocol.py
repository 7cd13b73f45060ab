"""Slow clients do not hold the server: a header deadline on every connection, a body deadline
per request (``keel.serving.app``), idle keep-alive closed, and a cap on connections.

uvicorn closes idle keep-alive connections and can refuse connections beyond a limit, but it
waits for request headers forever: a client that sends one byte a minute (slowloris) holds
a connection and its memory as long as it likes. ``header_timeout_protocol`` returns
uvicorn's httptools protocol with a timer armed when a connection opens and when a request
starts, cancelled when that request's headers are complete; when it fires, the connection is
closed.
"""

from __future__ import annotations

from typing import Any


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's HttpToolsProtocol that closes a connection whose request headers take longer
    than ``seconds`` to arrive."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def server_options(settings: Any) -> dict[str, Any]:
    """uvicorn options from ``serving`` settings: the guarded protocol, the keep-alive and the
    connection cap (beyond it uvicorn answers 503)."""
    return {
        "http": header_timeout_protocol(settings.header_timeout_seconds),
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
    }
