"""The supervisor's engine: the wall, a link per station, discovery, and their supervision.

:class:`Follower` is what ``supervise`` runs, headless or in the window: it makes a room and a
:class:`~.consumer.StationLink` for every station given by address and every one discovery
finds, and watches all those workers with the station's own
:class:`~ionm_station.pipeline.supervisor.Supervisor` (a link that raises is restarted within a
fraction of a second). Nothing here can act on a station.
"""

from __future__ import annotations

import threading

from sdc11073.certloader import SSLContextContainer

from ionm_station.events import EventLog
from ionm_station.pipeline.supervisor import Supervisor
from ionm_station.pipeline.worker import Worker
from ionm_station.remote.consumer import StationLink
from ionm_station.remote.discovery import DiscoveryWorker, station_epr, station_url
from ionm_station.remote.transport import route_library_log
from ionm_station.remote.wall import Wall


class Follower:
    """Follows stations onto a :class:`~.wall.Wall`.

    Args:
        wall: the rooms.
        tls: client/server contexts, or None for plain HTTP.
        stations: (address, port) of stations to follow by address.
        discover_on: this machine's address to run WS-Discovery on (None: no discovery).
    """

    def __init__(self, wall: Wall, tls: SSLContextContainer | None,
                 stations: list[tuple[str, int]] = (), discover_on: str | None = None) -> None:
        route_library_log()
        self.wall = wall
        self.tls = tls
        self.events = EventLog()
        self._workers: list[Worker] = []
        self._views: list[Worker] = []
        self._lock = threading.Lock()
        self._started = False
        for address, port in stations:
            self.follow(station_epr(address, port).urn, station_url(address, port, tls is not None))
        if discover_on is not None:
            self._workers.append(DiscoveryWorker(discover_on, self.follow))
        self.supervisor = Supervisor(self.workers, self.events, None, lambda: 0)

    def workers(self) -> list[Worker]:
        """Every worker watched: the follower's links and discovery, the views' own."""
        with self._lock:
            return self._workers + self._views

    def follow(self, epr: str, url: str) -> None:
        """Follow the station ``epr`` at ``url`` (once; a known station's address is updated)."""
        room, new = self.wall.room(epr, url)
        if not new:
            return
        link = StationLink(room, self.tls)
        with self._lock:
            self._workers.append(link)
            started = self._started
        if started:
            link.start()

    def supervise(self, worker: Worker) -> None:
        """Watch a view's own worker too (e.g. the window's alarm sound); it is started by
        its owner."""
        with self._lock:
            self._views.append(worker)

    def start(self) -> None:
        """Start every worker and their supervision."""
        with self._lock:
            self._started = True
            workers = list(self._workers)
        for w in workers:
            w.start()
        self.supervisor.start()

    def stop(self) -> None:
        """Stop supervision and every worker (their links torn down)."""
        self.supervisor.stop()
        with self._lock:
            workers = list(self._workers)
        for w in workers:
            w.stop(timeout_s=3.0)
