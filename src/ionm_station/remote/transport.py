"""Two pieces of ``sdc11073``'s provider transport replaced so that no supervisor is waited for.

* :class:`SdcServer` — the HTTP(S) server of a provider (on a fixed address and port: the
  library lets the OS choose the port, and a supervisor connecting by address needs it fixed)
  and of each supervisor link (where notifications arrive). The socket is bound when the server
  is made, so a busy port is an error at start-up, and with ``SO_REUSEADDR`` a restarted
  station gets its port back at once. TLS handshakes happen on each connection's own thread,
  not in the accept loop: a peer that connects and says nothing holds up no one else. A peer
  that hangs up is logged, not printed.
* :class:`QueuedSubscriptionsManager` — notifications are queued per subscriber and sent by one
  task per subscriber on the library's event loop; the caller (the publisher worker, inside an
  MDIB transaction) never waits for a network round trip. Reports to one subscriber stay in
  order. A subscriber that falls :data:`MAX_QUEUED` reports behind (a frozen or unreachable
  supervisor) loses its subscription; its supervisor sees the silence, says CONNECTION LOST
  and subscribes again.

One fault of the library is mended: :func:`close_clients_unlocked` (its soap client pool closed
a client on the event loop while holding the pool's lock, which a send on that loop takes: the
housekeeping thread and the loop waited for each other for good, and with them the publisher,
its supervisor and a station stopping).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import sys
from typing import Any

from sdc11073.httpserver.httpserverimpl import HttpServerThreadBase, _ThreadingHTTPServer
from sdc11073.provider.subscriptionmgr_async import (
    BicepsSubscriptionAsync,
    SubscriptionsManagerPathAsync,
)
from sdc11073.pysoap.soapclientpool import SoapClientPool
from sdc11073.xml_types.basetypes import MessageType

from ionm_station.logs import default_log_path, open_log

#: Reports a subscriber may be behind before its subscription is ended (~5 s of waveforms).
MAX_QUEUED = 100
#: How often an idle subscriber's sender looks whether its subscription still holds (s).
WAKE_S = 1.0

log = logging.getLogger("ionm_station")


def route_library_log() -> None:
    """``sdc11073``'s own log (its loggers are ``sdc.*``): warnings and worse into the station
    log, never onto the terminal (a supervisor hanging up is not the user's business)."""
    sdc = logging.getLogger("sdc")
    sdc.propagate = False
    sdc.setLevel(logging.WARNING)
    open_log(default_log_path())
    for handler in log.handlers or [logging.NullHandler()]:
        if handler not in sdc.handlers:
            sdc.addHandler(handler)


def close_clients_unlocked(pool: SoapClientPool) -> None:
    """Make ``pool`` forget a subscriber's use of a connection under its lock but close the
    connection (on the library's event loop, waiting for it) after releasing the lock.

    ``SoapClientPool.forget_usr`` (sdc11073 3.0) runs the close coroutine on the event loop and
    waits for it while holding the pool's lock; a notification sent on that loop meanwhile asks
    the pool for its client, blocks the loop on that lock, and the close can never run.
    """
    def forget_usr(netloc: str, usr_ident: Any) -> None:
        with pool._lock:
            entry = pool._soap_clients.get(netloc)
            if entry is None or usr_ident not in entry.usr_idents:
                return
            entry.usr_idents.remove(usr_ident)
            if entry.usr_idents:
                return
            del pool._soap_clients[netloc]
        if entry.soap_client is None:
            return
        if pool.async_loop_subscr_mgr is None:
            entry.soap_client.close()
        else:
            pool.async_loop_subscr_mgr.run_coro(entry.soap_client.async_close())

    pool.forget_usr = forget_usr  # type: ignore[method-assign]


class _ReusableServer(_ThreadingHTTPServer):
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (peer gone, TLS refused): one line in the log."""
        log.info("SDC connection from %s ended: %s", client_address,
                 f"{type(sys.exc_info()[1]).__name__}: {sys.exc_info()[1]}")


class SdcServer(HttpServerThreadBase):
    """An HTTP(S) server for SDC, bound to ``address``:``port`` (0: any free port) when made.

    Raises:
        OSError: the address is not this machine's or the port is taken.
    """

    def __init__(self, address: str, port: int, ssl_context: ssl.SSLContext | None,
                 encodings: list[str]) -> None:
        super().__init__(address, ssl_context, encodings, log)
        self.name = "sdc-http-server"
        self.httpd = _ReusableServer(self.logger, (address, port), 0, encodings)
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True,
                                                        do_handshake_on_connect=False)
        scheme = "https" if ssl_context is not None else "http"
        self.base_url = f"{scheme}://{address}:{self.server_port}/"

    def run(self) -> None:
        """Serve until :meth:`stop`."""
        self.started_evt.set()
        self.httpd.serve_forever()


class QueuedSubscriptionsManager(SubscriptionsManagerPathAsync):
    """Subscriptions whose notifications are queued, never awaited by the sender."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outboxes: dict[int, tuple[collections.deque, asyncio.Event]] = {}

    def send_to_subscribers(self, payload: Any, action: str, mdib_version_group: Any) -> None:
        """Queue ``payload`` for every subscriber of ``action`` and return at once."""
        if not self._async_send_thread.running:
            return
        if isinstance(payload, MessageType):
            nsh = self.sdc_definitions.data_model.ns_helper
            ns_map = nsh.partial_map(nsh.PM, nsh.MSG, *payload.additional_namespaces)
            body = payload.as_etree_node(payload.NODETYPE, ns_map)
        else:
            body = payload
        with self._subscriptions.lock:
            subscribers = [s for s in self._get_subscriptions_for_action(action) if s.is_valid]
        loop = self._async_send_thread.loop
        for sub in subscribers:
            box = self._outboxes.get(id(sub))
            if box is None:
                box = self._outboxes[id(sub)] = (collections.deque(), asyncio.Event())
                asyncio.run_coroutine_threadsafe(self._drain(sub, *box), loop)
            queue, wake = box
            if len(queue) >= MAX_QUEUED:
                log.warning("SDC subscriber %s is %d reports behind: subscription ended",
                            sub.notify_to_address, len(queue))
                sub.notify_errors = sub.MAX_NOTIFY_ERRORS  # invalid: housekeeping removes it
                queue.clear()
            else:
                queue.append((body, action))
            loop.call_soon_threadsafe(wake.set)

    def _end_all_subscriptions(self, send_subscription_end: bool) -> None:
        """The library's, holding the subscriptions' lock throughout: sdc11073 3.0 closes the
        subscriptions iterating the live set after letting go of the lock, and a supervisor's
        Unsubscribe served meanwhile on the HTTP server's thread took one out of that set:
        "Set changed size during iteration" out of ``Publisher.close`` (the remote wall's test,
        once in a CI run). The lock is reentrant, so the library takes it again inside."""
        with self._subscriptions.lock:
            super()._end_all_subscriptions(send_subscription_end)

    async def _drain(self, sub: BicepsSubscriptionAsync, queue: collections.deque,
                     wake: asyncio.Event) -> None:
        """Send ``sub``'s queued reports in order until it is no longer valid."""
        try:
            while sub.is_valid:
                try:
                    await asyncio.wait_for(wake.wait(), WAKE_S)
                except asyncio.TimeoutError:
                    continue  # look again whether the subscription still holds
                wake.clear()
                while queue and sub.is_valid:
                    body, action = queue.popleft()
                    await sub.async_send_notification_report(body, action)
        except Exception as exc:  # the subscriber is gone: it subscribes again when it can
            log.info("SDC notification to %s failed: %s", sub.notify_to_address,
                     f"{type(exc).__name__}: {exc}")
        finally:
            self._outboxes.pop(id(sub), None)
