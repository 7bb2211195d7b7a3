"""Test-wide settings: the station log goes to a temporary folder, never the user's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _station_log_in_a_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("IONM_STATION_LOG_DIR", str(tmp_path_factory.mktemp("station-log")))
    yield
    mp.undo()
