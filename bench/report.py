"""Pure rendering of a bench results document: targets, tables, the README block.

Kept apart from bench/run.py so ``--readme`` can rewrite the README from
bench/results.json without starting a git server or a daemon, and so the
verdicts (met / not met) are computed in one place from the stored figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024
BIG = 10_000  # the size the release-store issue's targets are stated at
SMALL = 100  # idle RSS at 100 skills has its own target

BEGIN = "<!-- bench:begin: generated from bench/results.json by `bench/run.py --readme`; do not edit -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Target:
    """One target of the issue, judged on one run: met, or not, and the figure that decided it."""

    name: str
    met: bool | None  # None: the run did not measure it (size missing)
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.name, "met": self.met, "value": self.value}

    @property
    def verdict(self) -> str:
        return {True: "met", False: "not met", None: "not measured"}[self.met]


def _by_size(results: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(r["skills"]): r for r in results["sizes"]}


def _med(stats: dict[str, Any]) -> float:
    return float(stats["median"])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def targets(results: dict[str, Any]) -> list[Target]:
    """The release-store issue's targets against one run, each met / not met / not measured."""
    sizes = _by_size(results)
    big = sizes.get(BIG) or (sizes[max(sizes)] if sizes else None)
    out: list[Target] = []
    out.extend(_latency_targets(big))
    out.extend(_first_sync_targets(big))
    out.extend(_disk_targets(big))
    out.extend(_rss_targets(sizes.get(SMALL) or (sizes[min(sizes)] if sizes else None), big))
    out.extend(_poll_targets(big))
    return out


def _missing(name: str) -> Target:
    return Target(name, None, "size not in this run")


def _latency_targets(big: dict[str, Any] | None) -> list[Target]:
    names = ("1 changed skill: SIGHUP to `current` moved <= 0.5 s",
             "1 changed skill: signed webhook push to `current` moved <= 0.5 s",
             "mirror mode: published folder updated <= 0.5 s after `current` moved")
    if big is None:
        return [_missing(n) for n in names]
    n = big["skills"]
    hup = _med(big["one_changed_sighup"]["to_current_s"])
    hook = _med(big["one_changed_webhook"]["to_current_s"])
    lag = _med(big["mirror_one_changed"]["published_after_current_s"])
    return [
        Target(f"{names[0]} ({n:,})", hup <= 0.5, _ms(hup)),
        Target(f"{names[1]} ({n:,})", hook <= 0.5, _ms(hook)),
        Target(f"{names[2]} ({n:,})", lag <= 0.5, _ms(lag)),
    ]


def _first_sync_targets(big: dict[str, Any] | None) -> list[Target]:
    name = "first sync <= 2x `git clone --depth 1` + checkout"
    if big is None:
        return [_missing(name)]
    first = big["first_sync"]
    ratio = float(first["ratio"])
    return [Target(f"{name} ({big['skills']:,})", ratio <= 2.0,
                   f"{ratio:.2f}x ({_ms(_med(first['skillsyncd_s']))} vs {_ms(_med(first['git_s']))})")]


def _disk_targets(big: dict[str, Any] | None) -> list[Target]:
    name = "disk of 5 retained releases <= 1.2x one release"
    if big is None:
        return [_missing(name)]
    disk = big["disk"]
    ratio = disk.get("ratio")
    if ratio is None:
        return [Target(f"{name} ({big['skills']:,})", None, "fewer than 5 deploys in this run")]
    packs = big["mirror_packs"]
    return [
        Target(f"{name} ({big['skills']:,})", ratio <= 1.2,
               f"{ratio:.2f}x ({disk['one_bytes'] / MB:.1f} MB -> {disk['five_bytes'] / MB:.1f} MB, "
               f"{disk['releases_after_five']} releases)"),
        Target(f"mirror packs stay bounded over {packs['syncs']} syncs ({big['skills']:,})",
               packs["bounded"],
               f"{packs['final_count']} packs, {packs['final_bytes'] / MB:.1f} MB at the end; "
               f"at most {packs['max_count']} packs, {packs['max_bytes'] / MB:.1f} MB"),
    ]


def _rss_targets(small: dict[str, Any] | None, big: dict[str, Any] | None) -> list[Target]:
    out: list[Target] = []
    if small is None:
        out.append(_missing("idle RSS <= 45 MB at 100 skills"))
    else:
        idle = small["rss"]["idle_bytes"]
        out.append(Target(f"idle RSS <= 45 MB ({small['skills']:,})", idle <= 45 * MB, f"{idle / MB:.1f} MB"))
    if big is None:
        out += [_missing("idle RSS after a 10,000-skill sync <= 60 MB"), _missing("peak RSS <= 120 MB")]
        return out
    idle = big["rss"]["idle_bytes"]
    peak = big["rss"]["peak_first_sync_bytes"]
    out.append(Target(f"idle RSS after the first sync <= 60 MB ({big['skills']:,})", idle <= 60 * MB,
                      f"{idle / MB:.1f} MB (after every scenario: "
                      f"{big['rss']['idle_end_bytes'] / MB:.1f} MB)"))
    out.append(Target(f"peak RSS during the first sync <= 120 MB ({big['skills']:,})", peak <= 120 * MB,
                      f"{peak / MB:.1f} MB (daemon); --once "
                      f"{_med(big['first_sync']['once_peak_rss_bytes']) / MB:.1f} MB"))
    return out


def _poll_targets(big: dict[str, Any] | None) -> list[Target]:
    name = "no-change poll <= 1.2x `git ls-remote`, 0 objects fetched"
    if big is None:
        return [_missing(name)]
    poll = big["no_change_poll"]
    ratio = float(poll["ratio"])
    ok = ratio <= 1.2 and poll["objects_fetched"] == 0 and poll["fetches"] == 0
    return [Target(f"{name} ({big['skills']:,})", ok,
                   f"{ratio:.2f}x ({_ms(_med(poll['duration_s']))} vs {_ms(_med(poll['git_ls_remote_s']))}), "
                   f"{poll['objects_fetched']} objects, {poll['fetches']} fetches")]


# --------------------------------------------------------------------------- tables


def _span(stats: dict[str, Any]) -> str:
    med, lo, hi = stats["median"], stats["min"], stats["max"]
    if med is None:
        return "-"
    if hi < 1:
        return f"{med * 1000:.0f} ms ({lo * 1000:.0f}-{hi * 1000:.0f})"
    return f"{med:.2f} s ({lo:.2f}-{hi:.2f})"


Row = tuple[str, Callable[[dict[str, Any]], str]]

ROWS: tuple[Row, ...] = (
    ("files in the repository", lambda r: f"{r['files']:,}"),
    ("no-change poll: skillsyncd / `git ls-remote`",
     lambda r: f"{_span(r['no_change_poll']['duration_s'])} / "
               f"{_span(r['no_change_poll']['git_ls_remote_s'])} "
               f"({r['no_change_poll']['ratio']:.2f}x)"),
    ("no-change poll: objects fetched", lambda r: str(r["no_change_poll"]["objects_fetched"])),
    ("idle CPU at the 60 s interval", lambda r: f"{r['no_change_poll']['cpu_s_per_hour_at_60s']:.1f} s/h"),
    ("first sync: skillsyncd --once", lambda r: _span(r["first_sync"]["skillsyncd_s"])),
    ("first sync: `git clone --depth 1` + checkout", lambda r: _span(r["first_sync"]["git_s"])),
    ("first sync: ratio", lambda r: f"{r['first_sync']['ratio']:.2f}x"),
    ("1 skill changed: SIGHUP to `current` moved", lambda r: _span(r["one_changed_sighup"]["to_current_s"])),
    ("1 skill changed: webhook to `current` moved",
     lambda r: _span(r["one_changed_webhook"]["to_current_s"])),
    ("1 skill changed: git-sync's way (fetch + worktree add + flip)",
     lambda r: _span(r["one_changed_sighup"]["git_s"])),
    ("1 skill changed, mirror mode: trigger to `current` moved",
     lambda r: _span(r["mirror_one_changed"]["to_current_s"])),
    ("1 skill changed, mirror mode: published after `current`",
     lambda r: _span(r["mirror_one_changed"]["published_after_current_s"])),
    ("1% changed: webhook to `current` moved", lambda r: _span(r["one_percent_changed"]["to_current_s"])),
    ("daemon RSS idle after the first sync", lambda r: f"{r['rss']['idle_bytes'] / MB:.1f} MB"),
    ("daemon RSS idle after every scenario", lambda r: f"{r['rss']['idle_end_bytes'] / MB:.1f} MB"),
    ("daemon RSS peak, first sync", lambda r: f"{r['rss']['peak_first_sync_bytes'] / MB:.1f} MB"),
    ("--once peak RSS, first sync", lambda r: f"{_med(r['first_sync']['once_peak_rss_bytes']) / MB:.1f} MB"),
    ("disk (state minus mirror): 1 release / after 5 more deploys",
     lambda r: f"{r['disk']['one_bytes'] / MB:.1f} MB / "
               + (f"{r['disk']['five_bytes'] / MB:.1f} MB ({r['disk']['ratio']:.2f}x)"
                  if r["disk"].get("ratio") is not None else "-")),
    ("mirror packs after every sync: count, size",
     lambda r: f"{r['mirror_packs']['final_count']}, {r['mirror_packs']['final_bytes'] / MB:.1f} MB "
               f"(max {r['mirror_packs']['max_count']}, {r['mirror_packs']['syncs']} syncs)"),
)


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a run: medians, min-max in brackets."""
    sizes = results["sizes"]
    head = "| | " + " | ".join(f"{r['skills']:,} skills" for r in sizes) + " |"
    rows = [head, "| --- |" + " --- |" * len(sizes)]
    for label, cell in ROWS:
        rows.append(f"| {label} | " + " | ".join(_cell(cell, r) for r in sizes) + " |")
    return "\n".join(rows)


def _cell(cell: Callable[[dict[str, Any]], str], size: dict[str, Any]) -> str:
    try:
        return cell(size)
    except (KeyError, TypeError):
        return "-"


def target_lines(results: dict[str, Any]) -> list[str]:
    return [f"- **{t['verdict'] if 'verdict' in t else _verdict(t['met'])}**: {t['target']}: {t['value']}"
            for t in results["targets"]]


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "not met", None: "not measured"}[met]


def machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    code = results.get("code", {})
    label = f" Code: {code['label']} ({code.get('commit', '?')[:12]})." if code.get("label") else ""
    return (f"Run {m['date']} on {m['cpu']}, {m['cores']} cores, {m['filesystem']}; Python {m['python']}, "
            f"git {m['git']}, dulwich {m['dulwich']}; served over `git://` (git daemon) on 127.0.0.1; "
            f"whole run {results.get('elapsed_s', 0) / 60:.1f} min.{label}")


def readme_block(results: dict[str, Any]) -> str:
    """What sits between the README's markers: the machine, the table, the targets."""
    return "\n".join([machine_line(results), "", table(results), "", "Targets (release-store issue):", "",
                      *target_lines(results)])


def rewrite_between(text: str, block: str) -> str:
    """``text`` with everything between the bench markers replaced by ``block``."""
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < start:
        raise ValueError("bench markers not found: add the begin and end comments first")
    return text[: start + len(BEGIN)] + "\n" + block + "\n" + text[stop:]
