"""The supervisor's window on a live station: tiles, CONNECTION LOST, a room's traces and log."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from tests.support.remote_procs import free_port
from tests.test_remote import TRAIN_SCENARIO, station

from ionm_station.gui.app import ensure_app
from ionm_station.remote.follow import Follower
from ionm_station.remote.provider import Publisher, PublishSettings
from ionm_station.remote.qt_wall import WallWindow
from ionm_station.remote.wall import Wall


def test_wall_shows_rooms_alarms_and_connection_lost(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text(TRAIN_SCENARIO)
    session = station(str(path))
    port = free_port()
    publisher = Publisher(session, PublishSettings(port=port, room="OR 5", procedure="L4-L5 XLIF"))
    session.start()
    ensure_app()  # the station's dark theme, as the window has it
    wall = Wall(limit=3)
    follower = Follower(wall, None, [("127.0.0.1", port), ("127.0.0.1", free_port())])
    window = WallWindow(follower)
    qtbot.addWidget(window)
    follower.start()
    window.show()
    closed = False
    try:
        qtbot.waitUntil(lambda: any(p.tiles is not None for p in window.panels.values()),
                        timeout=20_000)
        panel = next(p for p in window.panels.values() if p.room.name == "OR 5")
        qtbot.waitUntil(lambda: panel.tiles.tiles["L5-L"].state == "alarm", timeout=20_000)
        assert "OR 5" in panel.title.text() and "L4-L5 XLIF" in panel.details.text()
        assert not panel.banner.isVisible()
        other = next(p for p in window.panels.values() if p is not panel)
        assert other.banner.isVisible()  # nothing serves there: never connected
        window.grab().save(str(tmp_path / "wall.png"))
        window.open_room(panel.room.key)
        detail = window.details[panel.room.key]
        qtbot.waitUntil(lambda: detail.events.count() > 0 and len(detail._curves) == 16,
                        timeout=10_000)
        detail.grab().save(str(tmp_path / "room.png"))
        publisher.close()
        closed = True
        qtbot.waitUntil(lambda: panel.banner.isVisible()
                        and "CONNECTION LOST" in panel.banner.text(), timeout=3_000)
        assert wall.audible() == "warning" and "OR 5" in window.banner.text()
        window.grab().save(str(tmp_path / "wall_lost.png"))
    finally:
        window.close()
        follower.stop()
        if not closed:
            publisher.close()
        session.stop()
