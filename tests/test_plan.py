"""The pure planning functions: no I/O, just values in and out."""

from skillsyncd.model import Change
from skillsyncd.sync.decide import choose_deletions, make_plan


def test_plan_classifies_by_content_sha() -> None:
    deployed = {"a": "1", "b": "2", "c": "3"}
    incoming = {"a": "1", "b": "22", "d": "4"}
    plan = make_plan(deployed, incoming)
    assert plan.added == ("d",)
    assert plan.changed == ("b",)
    assert plan.removed == ("c",)
    assert plan.unchanged == ("a",)
    assert plan.to_build == ("b", "d")
    assert plan.change_of("c") is Change.REMOVED
    assert plan.change_of("a") is Change.UNCHANGED
    assert not plan.is_empty


def test_plan_first_sync_everything_added() -> None:
    plan = make_plan({}, {"x": "1", "y": "2"})
    assert plan.added == ("x", "y") and not plan.changed and not plan.removed


def test_plan_same_tree_is_empty() -> None:
    plan = make_plan({"x": "1"}, {"x": "1"})
    assert plan.is_empty and plan.unchanged == ("x",)


def test_retention_keeps_newest_and_protected() -> None:
    releases = [f"2026010{i}T000000Z-aaaaaaaaaaaa" for i in range(1, 9)]
    old_good = releases[0]
    doomed = choose_deletions(releases, keep=3, protect=[releases[-1], old_good])
    assert doomed == releases[1:5]


def test_retention_never_deletes_current_even_if_old() -> None:
    releases = ["20260101T000000Z-a", "20260102T000000Z-b", "20260103T000000Z-c"]
    assert choose_deletions(releases, keep=1, protect=["20260101T000000Z-a", None]) == [
        "20260102T000000Z-b"
    ]


def test_retention_with_fewer_releases_than_keep_deletes_nothing() -> None:
    assert choose_deletions(["r1", "r2"], keep=5) == []


def test_change_of_answers_every_kind_for_a_large_plan() -> None:
    deployed = {f"s{i}": "a" for i in range(10_000)}
    incoming = {**{f"s{i}": "a" for i in range(1, 10_000)}, "s5": "b", "new": "c"}
    plan = make_plan(deployed, incoming)
    assert plan.change_of("s0") is Change.REMOVED
    assert plan.change_of("s5") is Change.CHANGED
    assert plan.change_of("new") is Change.ADDED
    assert plan.change_of("s9") is Change.UNCHANGED
    assert plan == make_plan(deployed, incoming)  # the cache is not part of equality


def test_rollback_target_follows_what_current_replaced_and_skips_bad_commits() -> None:
    from skillsyncd.release.manifest import Manifest
    from skillsyncd.sync.decide import rollback_target

    def m(rid: str, commit: str, prev: str | None) -> Manifest:
        return Manifest(release=rid, commit=commit, previous_release=prev)

    ms = {"r1": m("r1", "A", None), "r2": m("r2", "B", "r1"), "r3": m("r3", "C", "r1")}
    assert rollback_target("r3", ms, bad={"B"}) == "r1"
    assert rollback_target("r2", ms, bad=set()) == "r1"
    assert rollback_target("r3", ms, bad={"A", "B"}) is None
    # 0.1.0 manifests have no previous_release: the newest older release that is not bad
    old = {"r1": m("r1", "A", None), "r2": m("r2", "B", None), "r3": m("r3", "C", None)}
    assert rollback_target("r3", old, bad={"B"}) == "r1"
