"""Finding stations: WS-Discovery (UDP multicast) when asked, a fixed address otherwise.

A station takes part in WS-Discovery only with ``--discoverable``: it then says Hello on its
address's interface when it starts, Bye when it stops, and answers Probes. Without it the
provider gets :class:`NoDiscovery`, which sends nothing at all: no multicast leaves the machine
unless asked. The supervisor's :class:`DiscoveryWorker` (``supervise --discover``) probes every
:data:`PROBE_EVERY_S` and listens for Hellos, and hands every medical device it finds to the
wall. Multicast goes out on the interface of the given address only.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.wsdiscovery import WSDiscovery
from sdc11073.wsdiscovery.service import Service

from ionm_station.pipeline.worker import Worker

#: Seconds between two Probes of the supervisor.
PROBE_EVERY_S = 2.0
#: Namespace of the stations' endpoint references.
EPR_NAMESPACE = uuid.UUID("6c1f7a52-0d0e-5b7e-9a51-10f3b1e0c0de")

log = logging.getLogger("ionm_station")


def station_epr(address: str, port: int) -> uuid.UUID:
    """A station's endpoint reference: the same for the same address and port, so a station
    that restarts is the same station, and a supervisor given only the address can build its
    URL (:func:`station_url`)."""
    return uuid.uuid5(EPR_NAMESPACE, f"{address}:{port}")


def station_url(address: str, port: int, secure: bool) -> str:
    """The transport address (XAddr) of the station serving on ``address``:``port``."""
    return f"{'https' if secure else 'http'}://{address}:{port}/{station_epr(address, port).hex}"


class NoDiscovery:
    """What the SDC provider needs of a discovery (its address) with nothing sent."""

    def __init__(self, address: str) -> None:
        self._address = address

    @property
    def active_address(self) -> str:
        """The address the provider serves on."""
        return self._address

    def publish_service(self, epr: str, types: list, scopes: object, x_addrs: list) -> None:
        """Nothing to announce: a supervisor connects by address."""

    def clear_service(self, epr: str) -> None:
        """Nothing was announced."""

    def stop(self) -> None:
        """Nothing runs."""


def station_discovery(address: str, discoverable: bool) -> WSDiscovery | NoDiscovery:
    """The provider's discovery: WS-Discovery on ``address``'s interface, started, when
    ``discoverable``; else :class:`NoDiscovery`."""
    if not discoverable:
        return NoDiscovery(address)
    wsd = WSDiscovery(address)
    wsd.start()
    return wsd


class DiscoveryWorker(Worker):
    """Probes for SDC medical devices and reports each one found (Hello or ProbeMatch).

    Args:
        address: this machine's address on the network to search (its interface carries the
            multicast).
        found: called with the endpoint reference and the first transport address of every
            device seen (again at each probe: the receiver ignores what it knows).
    """

    def __init__(self, address: str, found: Callable[[str, str], None]) -> None:
        super().__init__("discovery", stall_s=5.0, idle_s=0.1)
        self.address = address
        self._found = found
        self._wsd: WSDiscovery | None = None
        self._next_probe = 0.0

    def step(self) -> int:
        """Start WS-Discovery if needed, probe when due, pass on what it knows."""
        if self._wsd is None:
            self._wsd = WSDiscovery(self.address)
            self._wsd.start()
            self._wsd.set_remote_service_hello_callback(
                self._hello, types=SdcV1Definitions.MedicalDeviceTypesFilter)
        if time.monotonic() < self._next_probe:
            return 0
        self._next_probe = time.monotonic() + PROBE_EVERY_S
        for service in self._wsd.search_services(types=SdcV1Definitions.MedicalDeviceTypesFilter,
                                                 timeout=0.5, repeat_probe_interval=1):
            self._report(service)
        return 1

    def _hello(self, addr_from: str, service: Service) -> None:
        """A device said Hello (on WS-Discovery's thread)."""
        self._report(service)

    def _report(self, service: Service) -> None:
        if service.x_addrs:
            self._found(service.epr, service.x_addrs[0])

    def on_restart(self) -> None:
        self._close()
        self._next_probe = 0.0

    def on_exit(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._wsd is not None:
            try:
                self._wsd.stop()
            except Exception as exc:  # stopping a broken discovery must not stop the restart
                log.info("WS-Discovery stop: %s", exc)
            self._wsd = None
