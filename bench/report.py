"""Pure rendering of a bench results document: targets, tables, the README block.

Kept apart from bench/run.py so ``--readme`` can rewrite the README from
bench/results.json without starting a git server or a daemon, and so the
verdicts (met / not met) are computed in one place from the stored figures.
Every target that depends on the publish mode is judged once per mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024
BIG = 10_000  # the size the targets are stated at
SCALE_FROM, SCALE_TO = 1_000, 30_000  # "at 30,000 skills <= 1.5x the 1,000-skill figure"
MODES = ("link", "mirror")

BEGIN = "<!-- bench:begin: generated from bench/results.json by `bench/run.py --readme`; do not edit -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Target:
    """One target of the issue, judged on one run: met, or not, and the figure that decided it."""

    key: str  # stable: "<mode>.<what>", for tools and tests reading results.json
    name: str
    met: bool | None  # None: the run did not measure it (size missing)
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "target": self.name, "met": self.met, "value": self.value}


def verdict(met: bool | None) -> str:
    return {True: "met", False: "not met", None: "not measured"}[met]


def _by_size(results: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(r["skills"]): r for r in results["sizes"]}


def _full(results: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The sizes that ran every scenario (not only the scaling rows)."""
    return {n: r for n, r in _by_size(results).items() if not r.get("scale_only")}


def _med(stats: dict[str, Any]) -> float:
    return float(stats["median"])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _big(results: dict[str, Any]) -> dict[str, Any] | None:
    full = _full(results)
    return full.get(BIG) or (full[max(full)] if full else None)


def _scale_pair(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """1,000 and 30,000 skills; a shorter run stands in with its smallest and largest sizes."""
    sizes = _by_size(results)
    lo = sizes.get(SCALE_FROM) or (sizes[min(sizes)] if sizes else None)
    hi = sizes.get(SCALE_TO) or (sizes[max(sizes)] if sizes else None)
    if lo is None or hi is None or lo is hi:
        return None
    return lo, hi


def targets(results: dict[str, Any]) -> list[Target]:
    """Every target of the issue against one run, per publish mode: met / not met / not measured."""
    big, pair = _big(results), _scale_pair(results)
    out: list[Target] = []
    for mode in MODES:
        out.extend(_latency_targets(mode, big, pair))
        out.extend(_disk_targets(mode, big, pair))
        out.extend(_first_sync_targets(mode, big))
        out.extend(_rss_targets(mode, list(_by_size(results).values()), big))
        out.extend(_poll_targets(mode, big))
    return out


def _missing(key: str, name: str) -> Target:
    return Target(key, name, None, "size not in this run")


def _mode(size: dict[str, Any], mode: str) -> dict[str, Any]:
    return dict(size["modes"][mode])


def _latency_targets(mode: str, big: dict[str, Any] | None,
                     pair: tuple[dict[str, Any], dict[str, Any]] | None) -> list[Target]:
    one = f"[{mode}] 1 skill changed: trigger (SIGHUP, webhook) to `current` moved <= 0.5 s"
    scale = f"[{mode}] 1 skill changed: {SCALE_TO:,} skills <= 1.5x {SCALE_FROM:,} skills"
    out: list[Target] = []
    if big is None:
        out.append(_missing(f"{mode}.one_changed", one))
    else:
        m = _mode(big, mode)
        hup = _med(m["one_changed_sighup"]["to_current_s"])
        hook = _med(m["one_changed_webhook"]["to_current_s"])
        out.append(Target(f"{mode}.one_changed", f"{one} ({big['skills']:,})", max(hup, hook) <= 0.5,
                          f"SIGHUP {_ms(hup)}, webhook {_ms(hook)}"))
        if mode == "mirror":
            lag = _med(m["one_changed_webhook"]["published_after_current_s"])
            out.append(Target("mirror.published_after_current",
                              f"[mirror] published folder updated <= 0.5 s after `current` moved "
                              f"({big['skills']:,})", lag <= 0.5, _ms(lag)))
    if pair is None:
        out.append(_missing(f"{mode}.one_changed_scaling", scale))
    else:
        lo, hi = (_med(_mode(s, mode)["one_changed_sighup"]["to_current_s"]) for s in pair)
        ratio = hi / lo
        where = f"{pair[1]['skills']:,} / {pair[0]['skills']:,}"
        out.append(Target(f"{mode}.one_changed_scaling", f"{scale} ({where})", ratio <= 1.5,
                          f"{ratio:.2f}x ({_ms(hi)} vs {_ms(lo)})"))
    return out


def _disk_targets(mode: str, big: dict[str, Any] | None,
                  pair: tuple[dict[str, Any], dict[str, Any]] | None) -> list[Target]:
    name = f"[{mode}] disk after 5 kept releases <= 1.2x one release"
    out: list[Target] = []
    if big is None:
        return [_missing(f"{mode}.disk", name), _retention_target(mode, pair)]
    disk = _mode(big, mode)["disk"]
    ratio = disk.get("ratio")
    if ratio is None:
        out.append(Target(f"{mode}.disk", f"{name} ({big['skills']:,})", None,
                          "fewer than 5 deploys in this run"))
    else:
        out.append(Target(f"{mode}.disk", f"{name} ({big['skills']:,})", ratio <= 1.2,
                          f"{ratio:.2f}x ({disk['one_bytes'] / MB:.1f} MB -> "
                          f"{disk['five_bytes'] / MB:.1f} MB, {disk['releases_after_five']} releases)"))
    out.append(_retention_target(mode, pair))
    packs = _mode(big, mode)["mirror_packs"]
    out.append(Target(f"{mode}.mirror_packs",
                      f"[{mode}] fetch mirror's packs stay bounded over {packs['syncs']} syncs "
                      f"({big['skills']:,})", packs["bounded"],
                      f"{packs['final_count']} packs, {packs['final_bytes'] / MB:.1f} MB at the end; "
                      f"at most {packs['max_count']} packs, {packs['max_bytes'] / MB:.1f} MB"))
    return out


def _retention_target(mode: str, pair: tuple[dict[str, Any], dict[str, Any]] | None) -> Target:
    """Work proportional to what it removes: after 1-skill deploys it must not grow with the repository."""
    name = (f"[{mode}] retention after 1-skill deploys: {SCALE_TO:,} skills <= 1.5x {SCALE_FROM:,} skills "
            "(work proportional to what it removes)")
    if pair is None:
        return _missing(f"{mode}.retention_scaling", name)
    lo, hi = (_mode(s, mode)["retention"]["seconds"]["median"] for s in pair)
    where = f"{pair[1]['skills']:,} / {pair[0]['skills']:,}"
    if lo is None or hi is None:
        return Target(f"{mode}.retention_scaling", f"{name} ({where})", None,
                      "a size pruned no release in this run")
    ratio = hi / lo if lo > 0 else float("inf")
    return Target(f"{mode}.retention_scaling", f"{name} ({where})", ratio <= 1.5,
                  f"{ratio:.2f}x ({_ms(hi)} vs {_ms(lo)} a deploy)")


def _first_sync_targets(mode: str, big: dict[str, Any] | None) -> list[Target]:
    name = f"[{mode}] first sync <= 2x `git clone --depth 1` + checkout"
    if big is None:
        return [_missing(f"{mode}.first_sync", name)]
    first = _mode(big, mode)["first_sync"]
    ratio = float(first["ratio"])
    return [Target(f"{mode}.first_sync", f"{name} ({big['skills']:,})", ratio <= 2.0,
                   f"{ratio:.2f}x ({_ms(_med(first['skillsyncd_s']))} vs "
                   f"{_ms(_med(big['git']['clone_s']))})")]


def _rss_targets(mode: str, sizes: list[dict[str, Any]], big: dict[str, Any] | None) -> list[Target]:
    idle_name = f"[{mode}] daemon RSS idle <= 40 MB at every size (after the first sync and after a sync)"
    peak_name = f"[{mode}] peak RSS of the first sync <= 120 MB"
    out: list[Target] = []
    if not sizes:
        return [_missing(f"{mode}.rss_idle", idle_name), _missing(f"{mode}.rss_peak", peak_name)]
    worst = max(sizes, key=lambda s: max(_mode(s, mode)["rss"]["idle_bytes"],
                                         _mode(s, mode)["rss"]["idle_end_bytes"]))
    rss = _mode(worst, mode)["rss"]
    idle = max(rss["idle_bytes"], rss["idle_end_bytes"])
    out.append(Target(f"{mode}.rss_idle", idle_name, idle <= 40 * MB,
                      f"worst {idle / MB:.1f} MB at {worst['skills']:,} skills "
                      f"(after the first sync {rss['idle_bytes'] / MB:.1f} MB, "
                      f"after a sync {rss['idle_end_bytes'] / MB:.1f} MB)"))
    if big is None:
        out.append(_missing(f"{mode}.rss_peak", peak_name))
        return out
    m = _mode(big, mode)
    daemon = m["rss"]["peak_first_sync_bytes"]
    once = _med(m["first_sync"]["once_peak_rss_bytes"])
    out.append(Target(f"{mode}.rss_peak", f"{peak_name} ({big['skills']:,})", max(daemon, once) <= 120 * MB,
                      f"daemon {daemon / MB:.1f} MB, --once {once / MB:.1f} MB"))
    return out


def _poll_targets(mode: str, big: dict[str, Any] | None) -> list[Target]:
    name = f"[{mode}] no-change poll <= 1.2x `git ls-remote`, 0 objects fetched"
    if big is None:
        return [_missing(f"{mode}.no_change_poll", name)]
    poll = _mode(big, mode)["no_change_poll"]
    ratio = float(poll["ratio"])
    ok = ratio <= 1.2 and poll["objects_fetched"] == 0 and poll["fetches"] == 0
    cpu = poll.get("cpu_ratio")
    return [Target(f"{mode}.no_change_poll", f"{name} ({big['skills']:,})", ok,
                   f"{ratio:.2f}x wall ({_ms(_med(poll['duration_s']))} vs "
                   f"{_ms(_med(poll['git_ls_remote_s']))}); CPU {poll['cpu_per_poll_mean_s'] * 1000:.0f} ms "
                   f"vs {poll['git_ls_remote_cpu_mean_s'] * 1000:.0f} ms"
                   + (f" ({cpu:.2f}x)" if cpu is not None else "")
                   + f"; {poll['objects_fetched']} objects, {poll['fetches']} fetches")]


# --------------------------------------------------------------------------- tables


def _span(stats: dict[str, Any]) -> str:
    med, lo, hi = stats["median"], stats["min"], stats["max"]
    if med is None:
        return "-"
    if hi < 1:
        return f"{med * 1000:.0f} ms ({lo * 1000:.0f}-{hi * 1000:.0f})"
    return f"{med:.2f} s ({lo:.2f}-{hi:.2f})"


Cell = Callable[[dict[str, Any]], str]

BASE_ROWS: tuple[tuple[str, Cell], ...] = (
    ("files in the repository", lambda r: f"{r['files']:,}"),
    ("git: `clone --depth 1` + checkout", lambda r: _span(r["git"]["clone_s"])),
    ("git: 1 skill changed, git-sync's way (fetch + worktree add + flip)",
     lambda r: _span(r["modes"]["link"]["one_changed_sighup"]["git_s"])),
    ("git: `ls-remote` wall / CPU",
     lambda r: f"{_span(r['modes']['link']['no_change_poll']['git_ls_remote_s'])} / "
               f"{r['modes']['link']['no_change_poll']['git_ls_remote_cpu_mean_s'] * 1000:.0f} ms"),
)


def _change(key: str) -> Cell:
    return lambda m: _span(m[key]["to_current_s"])


MODE_ROWS: tuple[tuple[str, Cell], ...] = (
    ("first sync (`--once`)", lambda m: _span(m["first_sync"]["skillsyncd_s"])),
    ("first sync of the daemon (start to deployed)", lambda m: _ms(m["rss"]["startup_first_sync_s"])),
    ("first sync / git clone", lambda m: f"{m['first_sync']['ratio']:.2f}x"),
    ("1 skill changed: SIGHUP to `current` moved", _change("one_changed_sighup")),
    ("1 skill changed / git-sync's way", lambda m: f"{m['one_changed_sighup']['ratio_to_git']:.2f}x"),
    ("1 skill changed: webhook to `current` moved", _change("one_changed_webhook")),
    ("1% changed: webhook to `current` moved", _change("one_percent_changed")),
    ("no-change poll: wall (/ `ls-remote`)",
     lambda m: f"{_span(m['no_change_poll']['duration_s'])} ({m['no_change_poll']['ratio']:.2f}x)"),
    ("no-change poll: CPU (/ `ls-remote`), objects fetched",
     lambda m: f"{m['no_change_poll']['cpu_per_poll_mean_s'] * 1000:.0f} ms "
               f"({m['no_change_poll']['cpu_ratio']:.2f}x), {m['no_change_poll']['objects_fetched']}"),
    ("idle CPU at the 60 s interval", lambda m: f"{m['no_change_poll']['cpu_s_per_hour_at_60s']:.1f} s/h"),
    ("retention of one release (per deploy)", lambda m: _span(m["retention"]["seconds"])),
    ("daemon RSS idle: after the first sync / after a sync",
     lambda m: f"{m['rss']['idle_bytes'] / MB:.1f} / {m['rss']['idle_end_bytes'] / MB:.1f} MB"),
    ("peak RSS, first sync: daemon / `--once`",
     lambda m: f"{m['rss']['peak_first_sync_bytes'] / MB:.1f} / "
               f"{_med(m['first_sync']['once_peak_rss_bytes']) / MB:.1f} MB"),
    ("disk (state minus mirror): 1 release / 5 kept",
     lambda m: f"{m['disk']['one_bytes'] / MB:.1f} MB / {m['disk']['five_bytes'] / MB:.1f} MB "
               f"({m['disk']['ratio']:.2f}x)"),
    ("fetch mirror packs at the end: count, size",
     lambda m: f"{m['mirror_packs']['final_count']}, {m['mirror_packs']['final_bytes'] / MB:.1f} MB "
               f"({m['mirror_packs']['syncs']} syncs)"),
)
MIRROR_ROWS: tuple[tuple[str, Cell], ...] = (
    ("published folder after `current` (webhook)",
     lambda m: _span(m["one_changed_webhook"]["published_after_current_s"])),
)


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a run, both publish modes: medians, min-max in brackets."""
    sizes = results["sizes"]
    head = "| | " + " | ".join(f"{r['skills']:,} skills" + (" (scaling)" if r.get("scale_only") else "")
                               for r in sizes) + " |"
    rows = [head, "| --- |" + " --- |" * len(sizes)]
    for label, cell in BASE_ROWS:
        rows.append(f"| {label} | " + " | ".join(_cell(cell, r) for r in sizes) + " |")
    for mode in MODES:
        extra = MIRROR_ROWS if mode == "mirror" else ()
        for label, cell in (*MODE_ROWS, *extra):
            rows.append(f"| **{mode}**: {label} | "
                        + " | ".join(_cell(cell, r["modes"][mode]) for r in sizes) + " |")
    return "\n".join(rows)


def _cell(cell: Cell, row: dict[str, Any]) -> str:
    try:
        return cell(row)
    except (KeyError, TypeError):  # a row this size did not run (scaling sizes run fewer)
        return "-"


def scaling_lines(results: dict[str, Any]) -> list[str]:
    """1 skill changed at the largest size against the smallest, per mode (same run)."""
    pair = _scale_pair(results)
    if pair is None:
        return []
    lo, hi = pair
    out = []
    for mode in MODES:
        a = _med(lo["modes"][mode]["one_changed_sighup"]["to_current_s"])
        b = _med(hi["modes"][mode]["one_changed_sighup"]["to_current_s"])
        out.append(f"- {mode}: 1 skill changed at {hi['skills']:,} skills / {lo['skills']:,} skills: "
                   f"{b / a:.2f}x ({_ms(b)} / {_ms(a)})")
    return out


def target_lines(results: dict[str, Any]) -> list[str]:
    return [f"- **{verdict(t['met'])}**: {t['target']}: {t['value']}" for t in results["targets"]]


def machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    code = results.get("code", {})
    label = f" Code: {code['label']} ({code.get('commit', '?')[:12]})." if code.get("label") else \
        f" Code: {code.get('commit', '?')[:12]}."
    quick = " **QUICK run (`make bench QUICK=1`): small sizes, one run of each; not the full benchmark.**" \
        if results.get("settings", {}).get("quick") else ""
    return (f"Run {m['date']} on {m['cpu']}, {m['cores']} cores, {m['filesystem']}; Python {m['python']}, "
            f"git {m['git']}, dulwich {m['dulwich']}; served over `git://` (git daemon) on 127.0.0.1; "
            f"both publish modes (link, the default, and mirror) in the same run; "
            f"whole run {results.get('elapsed_s', 0) / 60:.1f} min.{label}{quick}")


def readme_block(results: dict[str, Any]) -> str:
    """What sits between the README's markers: the machine, the table, scaling, the targets."""
    scaling = scaling_lines(results)
    return "\n".join([machine_line(results), "", table(results), "",
                      *(["Scaling (same run):", "", *scaling, ""] if scaling else []),
                      "Targets (issue 27), each publish mode:", "", *target_lines(results)])


def rewrite_between(text: str, block: str) -> str:
    """``text`` with everything between the bench markers replaced by ``block``."""
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < start:
        raise ValueError("bench markers not found: add the begin and end comments first")
    return text[: start + len(BEGIN)] + "\n" + block + "\n" + text[stop:]
