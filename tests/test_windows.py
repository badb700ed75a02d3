"""Sync windows, the pure core: (windows, now) -> open or closed, why, and the next change.

Every instant here is a value the test picks (a fake clock); nothing reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillsyncd.config import load_config
from skillsyncd.errors import ConfigError
from skillsyncd.sync.windows import (
    ALLOW,
    DENY,
    SyncWindow,
    WindowError,
    closed_window,
    evaluate,
    is_active,
    parse_duration,
    parse_windows,
)


def _w(kind: str, schedule: str, duration: str, tz: str = "UTC", name: str = "") -> SyncWindow:
    return parse_windows([{"kind": kind, "schedule": schedule, "duration": duration,
                           "timezone": tz, "name": name}])[0]


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


NIGHT = _w(DENY, "0 22 * * *", "8h", "Europe/Berlin", "night")
OFFICE = _w(ALLOW, "0 9 * * 1-5", "8h", "UTC", "office")


def test_a_deny_window_closes_and_names_its_end() -> None:
    state = evaluate([NIGHT], _utc(2026, 1, 14, 23, 0))  # 00:00 in Berlin (CET, +1)
    assert not state.open and state.active == ("night",) and "night" in state.reason
    assert state.next_change == _utc(2026, 1, 15, 5, 0)  # 06:00 Berlin
    assert evaluate([NIGHT], _utc(2026, 1, 15, 5, 0)).open  # the end itself is open
    assert evaluate([NIGHT], _utc(2026, 1, 15, 4, 59, 59)).open is False


def test_no_windows_is_always_open() -> None:
    state = evaluate([], _utc(2026, 1, 1))
    assert state.open and state.next_change is None
    assert closed_window([], _utc(2026, 1, 1)) is None


def test_outside_every_allow_window_is_denied() -> None:
    saturday = _utc(2026, 1, 17, 10, 0)
    state = evaluate([OFFICE], saturday)
    assert not state.open and "outside every allow window" in state.reason
    assert state.next_change == _utc(2026, 1, 19, 9, 0)  # Monday 09:00
    assert evaluate([OFFICE], _utc(2026, 1, 19, 12, 0)).open


def test_an_overlap_of_allow_and_deny_is_denied() -> None:
    """argo-cd#5590: an allow window in effect must not open a deny window's time."""
    lunch = _w(DENY, "0 12 * * *", "1h", name="lunch")
    state = evaluate([OFFICE, lunch], _utc(2026, 1, 14, 12, 30))
    assert not state.open and state.active == ("office", "lunch")
    assert state.reason == "deny window lunch is in effect"
    assert state.next_change == _utc(2026, 1, 14, 13, 0)  # office is still in effect then
    after = evaluate([OFFICE, lunch], _utc(2026, 1, 14, 13, 0))
    assert after.open and after.next_change == _utc(2026, 1, 14, 17, 0)


def test_overlapping_deny_windows_end_when_the_last_one_does() -> None:
    a, b = _w(DENY, "0 10 * * *", "2h", name="a"), _w(DENY, "0 11 * * *", "3h", name="b")
    state = evaluate([a, b], _utc(2026, 1, 14, 10, 30))
    assert not state.open and state.next_change == _utc(2026, 1, 14, 14, 0)


def test_back_to_back_deny_starts_make_one_closed_stretch() -> None:
    hourly = _w(DENY, "0 1-5 * * *", "1h")  # 01:00 to 06:00 without a gap
    assert evaluate([hourly], _utc(2026, 1, 14, 1, 15)).next_change == _utc(2026, 1, 14, 6, 0)


def test_a_window_longer_than_its_period_stays_in_effect() -> None:
    w = _w(DENY, "0 */6 * * *", "7h")  # every start overlaps the one before: never ends
    state = evaluate([w], _utc(2026, 1, 14, 3, 0))
    assert not state.open and state.next_change is None


def test_spring_forward_moves_a_start_in_the_gap_by_the_gap() -> None:
    """Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist."""
    w = _w(DENY, "30 2 * * *", "1h", "Europe/Berlin")
    assert is_active(w, _utc(2026, 3, 29, 1, 30))  # 03:30 CEST: the start, moved by the gap
    assert not is_active(w, _utc(2026, 3, 29, 0, 59))  # 01:59 CET: before it
    assert evaluate([w], _utc(2026, 3, 29, 1, 45)).next_change == _utc(2026, 3, 29, 2, 30)
    assert is_active(w, _utc(2026, 3, 30, 0, 30))  # the next night: 02:30 CEST again


def test_fall_back_starts_once_and_lasts_elapsed_time() -> None:
    """Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice."""
    w = _w(DENY, "30 2 * * *", "1h", "Europe/Berlin")
    first = _utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert is_active(w, first) and not is_active(w, first - timedelta(seconds=1))
    assert evaluate([w], first).next_change == _utc(2026, 10, 25, 1, 30)  # one hour, not two
    assert not is_active(w, _utc(2026, 10, 25, 1, 45))  # 02:45 CET, the second 02:30 hour


def test_a_night_across_the_change_is_its_elapsed_duration() -> None:
    night = _w(DENY, "0 22 * * *", "8h", "America/New_York")
    # 2026-03-07 22:00 EST = 03:00Z; 8 elapsed hours later is 11:00Z (07:00 EDT, not 06:00)
    assert evaluate([night], _utc(2026, 3, 8, 4, 0)).next_change == _utc(2026, 3, 8, 11, 0)


def test_closed_window_names_the_windows_and_says_until() -> None:
    closed = closed_window([NIGHT], _utc(2026, 1, 14, 23, 0))
    assert closed is not None and closed.until == "2026-01-15T05:00:00.000Z"
    assert closed.window == "night" and "deploys at 2026-01-15T05:00:00.000Z" in closed.describe()
    assert closed_window([NIGHT], _utc(2026, 1, 14, 12, 0)) is None
    outside = closed_window([OFFICE, NIGHT], _utc(2026, 1, 17, 12, 0))  # a Saturday noon
    assert outside is not None and outside.window == "outside office"
    assert outside.until == "2026-01-19T09:00:00.000Z"


@pytest.mark.parametrize(("raw", "message"), [
    ('[{"kind": "maybe", "schedule": "* * * * *", "duration": "1h"}]', "kind must be"),
    ('[{"kind": "deny", "schedule": "61 * * * *", "duration": "1h"}]', "5-field cron"),
    ('[{"kind": "deny", "schedule": "0 0 * * * *", "duration": "1h"}]', "5-field cron"),
    ('[{"kind": "deny", "schedule": "0 0 * * *", "duration": "soon"}]', "is not a duration"),
    ('[{"kind": "deny", "schedule": "0 0 * * *", "duration": "40d"}]', "at most 31 days"),
    ('[{"kind": "deny", "schedule": "0 0 * * *", "duration": "1h", "timezone": "Mars/Base"}]',
     "IANA zone"),
    ('[{"kind": "deny", "schedule": "0 0 * * *", "duration": "1h", "manual": true}]',
     "unknown key(s) manual"),
    ("not json", "is not JSON"),
])
def test_bad_windows_are_refused_with_the_fix(raw: str, message: str) -> None:
    with pytest.raises(WindowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_windows(raw)


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(3600) == timedelta(hours=1) and parse_duration("2d") == timedelta(days=2)


# -- properties: any windows, any instant ------------------------------------------------

_SCHEDULES = ["0 * * * *", "30 2 * * *", "0 22 * * *", "*/15 9-17 * * 1-5", "0 0 1 * *",
              "45 1 * * 0", "0 3 * * 6", "10,40 * * * *"]
_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
windows_st = st.lists(st.builds(
    SyncWindow, kind=st.sampled_from([ALLOW, DENY]), schedule=st.sampled_from(_SCHEDULES),
    duration=st.integers(1, 36 * 60).map(lambda m: timedelta(minutes=m)),
    timezone=st.sampled_from(_ZONES)), min_size=1, max_size=4)
# around the 2026 DST changes of the zones above, and elsewhere in the year
instants = st.sampled_from([_utc(2026, 3, 8), _utc(2026, 3, 28), _utc(2026, 4, 4),
                            _utc(2026, 10, 3), _utc(2026, 10, 24), _utc(2026, 11, 1),
                            _utc(2026, 6, 1)]).flatmap(
    lambda base: st.integers(0, 3 * 86400).map(lambda s: base + timedelta(seconds=s)))


@settings(max_examples=80, deadline=None)
@given(windows_st, instants)
def test_deny_first_and_allow_only(windows: list[SyncWindow], now: datetime) -> None:
    state = evaluate(windows, now)
    deny = [w for w in windows if w.kind == DENY and is_active(w, now)]
    allow = [w for w in windows if w.kind == ALLOW and is_active(w, now)]
    any_allow = any(w.kind == ALLOW for w in windows)
    assert state.open == bool(not deny and (allow or not any_allow))
    assert set(state.active) == {w.label for w in deny + allow}


@settings(max_examples=60, deadline=None)
@given(windows_st, instants, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_the_next_change_is_the_first_flip(windows: list[SyncWindow], now: datetime,
                                           fractions: list[float]) -> None:
    """Open/closed holds from now until ``next_change``, and flips there."""
    state = evaluate(windows, now)
    if state.next_change is None:
        return
    assert state.next_change > now
    assert evaluate(windows, state.next_change).open != state.open
    span = state.next_change - now
    for f in fractions:
        between = now + span * f
        if between < state.next_change:
            assert evaluate(windows, between).open == state.open


# -- the setting, as load_config reads it ------------------------------------------------


def test_the_setting_from_toml_tables_and_from_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "skillsyncd.toml"
    toml.write_text('[[sync_windows]]\nname = "office"\nkind = "allow"\nschedule = "0 9 * * 1-5"\n'
                    'duration = "8h"\ntimezone = "America/New_York"\n\n[[sync_windows]]\n'
                    'kind = "deny"\nschedule = "0 12 * * 1-5"\nduration = 3600\n')
    cfg = load_config({}, env={}, config_file=toml)
    assert [(w.label, w.kind, w.duration) for w in cfg.sync_windows] == [
        ("office", ALLOW, timedelta(hours=8)),
        ("deny '0 12 * * 1-5' for 1h UTC", DENY, timedelta(hours=1))]
    env = load_config({}, env={"SKILLSYNC_SYNC_WINDOWS": '[{"kind": "deny", "schedule": '
                                                         '"0 22 * * *", "duration": "8h"}]'},
                      config_file=toml)
    assert [w.schedule for w in env.sync_windows] == ["0 22 * * *"]  # the environment wins
    assert load_config({}, env={}).sync_windows == ()


def test_a_bad_window_stops_the_start_naming_where_it_was_set() -> None:
    bad = '[{"kind": "deny", "schedule": "0 25 * * *", "duration": "1h"}]'
    with pytest.raises(ConfigError, match=r"sync window 1: schedule '0 25 \* \* \*' is not a "
                       r"5-field cron.*set by SKILLSYNC_SYNC_WINDOWS"):
        load_config({}, env={"SKILLSYNC_SYNC_WINDOWS": bad})


def test_the_documented_examples_load(tmp_path: Path) -> None:
    """operations.md's "Sync windows" blocks, copied as a reader would paste them."""
    docs = (Path(__file__).parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    section = docs.split("## Sync windows", 1)[1].split("\n## ", 1)[0]
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    json_text = shell.split("SKILLSYNC_SYNC_WINDOWS='", 1)[1].split("'", 1)[0]
    from_env = load_config({}, env={"SKILLSYNC_SYNC_WINDOWS": json_text}).sync_windows
    assert [w.label for w in from_env] == ["night", "weekend"]
    toml = tmp_path / "skillsyncd.toml"
    toml.write_text(section.split("```toml\n", 1)[1].split("```", 1)[0], encoding="utf-8")
    from_toml = load_config({}, env={}, config_file=toml).sync_windows
    assert [(w.label, w.kind) for w in from_toml] == [("office", ALLOW), ("meeting", DENY)]
    # the meeting is inside office hours and wins the overlap
    state = evaluate(from_toml, _utc(2026, 1, 14, 17, 30))  # 12:30 in New York (EST)
    assert not state.open and state.active == ("office", "meeting")
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("### Sync windows", 1)[1].split("SKILLSYNC_SYNC_WINDOWS='", 1)[1]
    from_readme = load_config({}, env={"SKILLSYNC_SYNC_WINDOWS": example.split("'", 1)[0]})
    assert [w.label for w in from_readme.sync_windows] == ["night", "meeting"]
