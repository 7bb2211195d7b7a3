"""Profiles, montages and the TOML loader: valid files load, malformed ones name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ionm_station.alarms import AlarmConfig
from ionm_station.config import shipped_names
from ionm_station.errors import ConfigError
from ionm_station.montage import channel_from_label, load_montage
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.profiles import load_profile
from ionm_station.triggered.cmap import CmapCriteria


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["lumbar", "cervical", "thoracolumbar", "combined32"])
def test_shipped_montages_load(name: str) -> None:
    m = load_montage(name)
    assert len(m.labels) == len(set(m.labels))
    assert all(c.side in ("L", "R") for c in m.channels)
    # every root appears on both sides
    roots_l = {c.root for c in m.channels if c.side == "L"}
    roots_r = {c.root for c in m.channels if c.side == "R"}
    assert roots_l == roots_r


def test_lumbar_myotomes() -> None:
    m = load_montage("lumbar")
    by_label = {c.label: c for c in m.channels}
    assert by_label["L5-L TibAnt"].root == "L5"
    assert by_label["S1-R Gastroc"].root == "S1"
    assert by_label["L4-L VastMed"].muscle == "vastus medialis"
    assert m.channels_of("L5", "L") == [3, 4]
    assert "L5-L" in m.root_sides()


def test_every_shipped_profile_loads() -> None:
    names = shipped_names("profiles")
    assert "simulated" in names
    for name in names:
        p = load_profile(name)
        assert p.channels >= 1 and p.sample_rate_hz > 0


def test_default_profile_is_simulated() -> None:
    p = load_profile()
    assert p.kind == "simulated" and p.simulated is not None
    assert p.sample_rate_hz >= 5000


@pytest.mark.parametrize(
    ("text", "key", "expect"),
    [
        ('[source]\nkind="simulated"\nsample_rate_hz=10000\nchannels=8\n', "name", "missing"),
        ('name="a"\n[source]\nkind="usb"\nsample_rate_hz=10000\nchannels=8\n', "source.kind", "expected one of"),
        ('name="a"\n[source]\nkind="simulated"\nsample_rate_hz="fast"\nchannels=8\n',
         "source.sample_rate_hz", "expected an integer or a number"),
        ('name="a"\n[source]\nkind="simulated"\nsample_rate_hz=10000\nchannels=99\n', "source.channels", "1–64"),
        ('name="a"\n[source]\nkind="simulated"\nsample_rate_hz=10000\nchannels=true\n', "source.channels",
         "expected an integer"),
        ('name="a"\n[source]\nkind="serial"\nsample_rate_hz=10000\nchannels=8\n', "serial", "missing"),
        ('name="a"\n[source]\nkind="serial"\nsample_rate_hz=10000\nchannels=8\n[serial]\nport="/dev/x"\n',
         "serial.uv_per_lsb", "missing"),
        ('name="a"\n[source]\nkind="brainflow"\nsample_rate_hz=250\nchannels=8\n[brainflow]\nboard_id="x"\n',
         "brainflow.board_id", "expected an integer"),
    ],
)
def test_malformed_profile_names_file_and_key(tmp_path: Path, text: str, key: str, expect: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(p)
    msg = str(info.value)
    assert str(p) in msg and key in msg and expect in msg


def test_profile_not_toml(tmp_path: Path) -> None:
    p = write(tmp_path, "name = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(p)


def test_missing_profile_lists_shipped() -> None:
    with pytest.raises(ConfigError, match="shipped: .*simulated"):
        load_profile("no_such_profile")
    with pytest.raises(ConfigError, match="file not found"):
        load_profile("/nonexistent/p.toml")


@pytest.mark.parametrize(
    ("entry", "key", "expect"),
    [
        ('label="a"\nmuscle="m"\nroot="L9"\nside="L"', "channels[0].root", "nerve root"),
        ('label="a"\nmuscle="m"\nroot="L5"\nside="left"', "channels[0].side", "'L' or 'R'"),
        ('label="a"\nroot="L5"\nside="L"', "channels[0].muscle", "missing"),
        ('label="a"\nmuscle="m"\nroot="L5"\nside="L"\nthreshold_uv=1', "channels[0].threshold_uv", "5–5000"),
    ],
)
def test_malformed_montage(tmp_path: Path, entry: str, key: str, expect: str) -> None:
    p = write(tmp_path, f'name="m"\n[[channels]]\n{entry}\n')
    with pytest.raises(ConfigError) as info:
        load_montage(p)
    assert key in str(info.value) and expect in str(info.value) and str(p) in str(info.value)


def test_duplicate_montage_label(tmp_path: Path) -> None:
    ch = '[[channels]]\nlabel="a"\nmuscle="m"\nroot="L5"\nside="L"\n'
    p = write(tmp_path, f'name="m"\n{ch}{ch}')
    with pytest.raises(ConfigError, match=r"channels\[1\].label: duplicate"):
        load_montage(p)


@pytest.mark.parametrize(
    ("label", "root", "side", "muscle"),
    [("L4-L TibAnt", "L4", "L", "TibAnt"), ("S1-R Gastroc", "S1", "R", "Gastroc"),
     ("C6 - L Biceps", "C6", "L", "Biceps"), ("EMG 3", "", "", ""), ("L9-L X", "", "", "")],
)
def test_edf_label_parsing(label: str, root: str, side: str, muscle: str) -> None:
    c = channel_from_label(label)
    assert (c.root, c.side, c.muscle) == (root, side, muscle)


SIMULATED = 'name="a"\n[source]\nkind="simulated"\nsample_rate_hz=10000\nchannels=8\n'
CYTON_RATE = 'name="a"\n[source]\nkind="simulated"\nsample_rate_hz=250\nchannels=8\n'


def test_profile_settings_tables_are_parsed(tmp_path: Path) -> None:
    p = write(tmp_path, SIMULATED + "[dsp]\nlow_hz = 20\nhigh_hz = 2000\nmains_hz = 50\n"
              "remove_ecg = false\n[alarms]\ncaution_train_time_s = 1\nhold_s = 2.5\n"
              "adaptive = true\n[triggered]\nregion = \"thoracic\"\nmax_ma = 30\n"
              "criterion_uv = 80\nlatency_ms = [6, 35]\n")
    profile = load_profile(p)
    assert profile.chain_settings == ChainSettings(20.0, 2000.0, 50.0, False)
    assert profile.alarm_config == AlarmConfig(caution_train_time_s=1.0, hold_s=2.5, adaptive=True)
    t = profile.triggered
    assert (t.region, t.max_ma) == ("thoracic", 30.0)
    assert t.criteria == CmapCriteria(latency_ms=(6.0, 35.0), criterion_uv=80.0)
    log = t.screw_log()
    assert log.region.name == "thoracic" and log.max_ma == 30.0
    bare = load_profile(write(tmp_path, SIMULATED, "bare.toml"))
    assert (bare.chain_settings, bare.alarm_config) == (ChainSettings(), AlarmConfig())


@pytest.mark.parametrize(
    ("text", "key", "expect"),
    [
        (SIMULATED + "[dsp]\nhihg_hz = 100\n", "dsp.hihg_hz", "unknown key (did you mean high_hz?)"),
        (SIMULATED + "[dps]\nhigh_hz = 100\n", "dps", "unknown table (did you mean dsp?)"),
        (SIMULATED + "[alarm]\nhold_s = 1\n", "alarm", "unknown table (did you mean alarms?)"),
        (SIMULATED + "[triggered]\ncriterion = 50\n", "triggered.criterion",
         "did you mean criterion_uv?"),
        (SIMULATED + "[alarms]\ncaution_train_s = 1\n", "alarms.caution_train_s",
         "did you mean caution_train_time_s?"),
        (SIMULATED + "[simulated]\nsenario = \"quiet\"\n", "simulated.senario",
         "did you mean scenario?"),
        (SIMULATED.replace("channels=8", "channels=8\nrate=3"), "source.rate",
         "unknown key (expected one of kind, sample_rate_hz"),
        ('mame="a"\n' + SIMULATED, "mame", "did you mean name?"),
        (SIMULATED + '[serial]\nport="/dev/x"\n', "serial",
         "table for a serial source, but source.kind is 'simulated'"),
        (SIMULATED + "[dsp]\nmains_hz = 55\n", "dsp.mains_hz", "expected 50 or 60"),
        (SIMULATED + "[dsp]\nlow_hz = 500\nhigh_hz = 400\n", "dsp.low_hz", "below high_hz (400 Hz)"),
        (SIMULATED + "[dsp]\nlow_hz = -1\n", "dsp.low_hz", "expected 0–50000 Hz"),
        (CYTON_RATE + "[dsp]\nhigh_hz = 300\n", "dsp.high_hz", "expected ≤ 125 Hz"),
        (CYTON_RATE + "[dsp]\nlow_hz = 200\n", "dsp.low_hz", "below high_hz (125 Hz)"),
        (SIMULATED + "[dsp]\nremove_ecg = 1\n", "dsp.remove_ecg", "expected true/false"),
        (SIMULATED + "[alarms]\nwarning_train_time_s = 0.2\n", "alarms.warning_train_time_s",
         "more than caution_train_time_s (0.5 s)"),
        (SIMULATED + "[alarms]\nhold_s = \"long\"\n", "alarms.hold_s", "expected an integer or a number"),
        (SIMULATED + "[triggered]\nregion = \"sacral\"\n", "triggered.region",
         "expected one of lumbar, thoracic, cervical"),
        (SIMULATED + "[triggered]\nlatency_ms = [40, 5]\n", "triggered.latency_ms",
         "expected start < end ≤ 60 ms"),
        (SIMULATED + "[triggered]\nblank_ms = 8\n", "triggered.blank_ms",
         "less than the latency window's start (5 ms)"),
        (SIMULATED + "[triggered]\nmax_ma = 500\n", "triggered.max_ma", "expected 0.5–100 mA"),
        (('name="a"\n[source]\nkind="brainflow"\nsample_rate_hz=250\nchannels=8\n[brainflow]\n'
          'board_id=-1\nlost_after_ms=2\n'), "brainflow.lost_after_ms", "expected 10–60000 ms"),
    ],
)
def test_profile_settings_errors_name_file_key_and_expectation(tmp_path: Path, text: str, key: str,
                                                                expect: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(p)
    assert str(info.value).startswith(f"{p}: {key}: ") and expect in str(info.value)
