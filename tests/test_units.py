import pytest

from leaklab import units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("500KB", 500_000),
        ("150MB", 150_000_000),
        ("150 mb", 150_000_000),
        ("1.5G", int(1.5 * 2**30)),
        ("1.5GB", 1_500_000_000),
        ("150MiB", 150 * 2**20),
        ("150M", 150 * 2**20),
        ("2.2KB", 2200),
        ("64B", 64),
        (1024, 1024),
    ],
)
def test_parse_size(text, expected):
    assert units.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MB", "12XB", "-5MB", "1.2.3MB", "ten"])
def test_parse_size_rejects_with_accepted_forms(bad):
    with pytest.raises(units.UnitError, match="accepted forms"):
        units.parse_size(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
    ],
)
def test_parse_duration(text, expected):
    assert units.parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "fast", "15x", "10 20", "m", "-3s"])
def test_parse_duration_rejects_with_accepted_forms(bad):
    with pytest.raises(units.UnitError, match="accepted forms"):
        units.parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("200/s", 200.0), ("37/s", 37.0), ("37", 37.0), ("600/min", 10.0), ("3600/h", 1.0)],
)
def test_parse_rate(text, expected):
    assert units.parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["0/s", "fast", "5/fortnight", "-1/s"])
def test_parse_rate_rejects(bad):
    with pytest.raises(units.UnitError, match="accepted forms"):
        units.parse_rate(bad)


def test_steps_or_duration():
    assert units.parse_steps_or_duration("1000") == units.StepsOrDuration(steps=1000)
    assert units.parse_steps_or_duration("10s") == units.StepsOrDuration(seconds=10.0)
    with pytest.raises(units.UnitError, match="step count or duration"):
        units.parse_steps_or_duration("lots")


def test_parse_growth():
    assert units.parse_growth("0.5MB/h").bytes_per_s == pytest.approx(500_000 / 3600)
    assert units.parse_growth("16B/step").bytes_per_step == 16
    assert units.parse_growth("2KB/s").bytes_per_s == 2000
    with pytest.raises(units.UnitError, match="accepted forms"):
        units.parse_growth("16B")


def test_format():
    assert units.format_size(2200) == "2.2 KB"
    assert units.format_size(150_000_000) == "150 MB"
    assert units.format_size(-2048, signed=True) == "-2.05 KB"
    assert units.format_size(12, signed=True) == "+12 B"
    assert units.format_duration(5400) == "1h30m"
    assert units.format_duration(42.25) == "42.2s"
    assert units.format_duration(float("inf")) == "never"


def test_size_round_trip_through_format():
    for value in (999, 2_200, 150_000_000, 4_000_000_000):
        text = units.format_size(value).replace(" ", "")
        assert abs(units.parse_size(text) - value) / value < 0.01
