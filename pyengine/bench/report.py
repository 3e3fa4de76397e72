"""Reports of benchmark Results: terminal or Markdown tables, a PNG of ratios, and the
comparison of two saved runs."""

from __future__ import annotations

from pyengine.bench.results import Result


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _grouped_notes(results) -> list[str]:
    """One line per distinct note, naming the rows it applies to (a note shared by every
    thread count of a workload names the workload once)."""
    rows_by_note: dict[str, dict[str, list[int]]] = {}
    for r in results:
        for n in r.notes:
            by_workload = rows_by_note.setdefault(n, {})
            by_workload.setdefault(f"{r.suite} {r.workload}", []).append(r.threads)
    lines = []
    for note, by_workload in rows_by_note.items():
        where = "; ".join(
            f"{w} ({', '.join(map(str, threads))} thr)" for w, threads in by_workload.items()
        )
        lines.append(f"{where}: {note}")
    return lines


def table(results: list[Result], markdown: bool = False) -> str:
    peers = sorted({p for r in results for p in r.peers})
    # several peers on a row (torch and torch-bf16, llama.cpp): the ratio to the fastest one
    best = any(len(r.peers) > 1 for r in results)
    header = [
        "suite",
        "workload",
        "thr",
        "unit",
        "pyengine",
        "±",
        *peers,
        *(f"vs {p}" for p in peers),
        *(["vs best"] if best else []),
        "% of limit",
    ]
    rows = []
    for r in results:
        cells = [
            r.suite,
            r.workload,
            str(r.threads),
            r.unit,
            _fmt(r.figure("pyengine")),
            f"{100 * r.spread('pyengine'):.0f}%",
        ]
        cells += [_fmt(r.figure(p)) if p in r.samples else "-" for p in peers]
        cells += [f"{r.speedup(p):.2f}x" if p in r.samples else "-" for p in peers]
        if best:
            b = r.best_peer()
            cells.append(f"{r.speedup(b):.2f}x {b}" if b else "-")
        frac = r.of_limit()
        cells.append(f"{100 * frac:.0f}% {r.limit_kind}" if frac is not None else "")
        rows.append(cells)
    notes = _grouped_notes(results)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c) + " |" for c in rows]
    else:
        widths = [
            max(len(h), *(len(c[i]) for c in rows)) if rows else len(h)
            for i, h in enumerate(header)
        ]
        fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines.append("")
    lines.append(
        "vs X: how many times faster pyengine is than X (same run, same threads, medians); "
        + ("vs best: than the row's fastest peer; " if best else "")
        + "±: interquartile range / median of pyengine's samples"
    )
    return "\n".join(lines)


def plot(results: list[Result], path: str) -> None:
    """A horizontal bar per (workload, threads, peer): pyengine's speedup over that peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"{r.workload} ({r.threads}t) vs {p}", r.speedup(p)) for r in results for p in r.peers]
    if not bars:
        raise ValueError("no peer measurements to plot")
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(bars) + 1.5))
    labels, values = zip(*bars)
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(bars)), values, color=colors)
    ax.set_yticks(range(len(bars)), labels, fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("pyengine speedup (x, > 1 = faster)")
    ax.set_title("pyengine vs peers, same machine, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(old: list[Result], new: list[Result]) -> tuple[str, int]:
    """Per workload present in both: pyengine's change, flagged when it exceeds the noise the
    two runs measured (the larger interquartile spread, at least 5%). Returns (text, number of
    regressions)."""
    before = {r.key: r for r in old}
    lines, regressions = [], 0
    for r in new:
        o = before.get(r.key)
        if o is None:
            continue
        a, b = o.figure("pyengine"), r.figure("pyengine")
        change = (a / b - 1) if r.latency else (b / a - 1)  # > 0: better
        noise = max(0.05, o.spread("pyengine"), r.spread("pyengine"))
        flag = ""
        if change < -noise:
            flag, regressions = "REGRESSION", regressions + 1
        elif change > noise:
            flag = "improved"
        lines.append(
            f"{r.suite:>8} {r.workload:<40} {r.threads:>3}t {_fmt(a):>9} -> "
            f"{_fmt(b):>9} {r.unit:<8} {100 * change:+6.1f}% (noise {100 * noise:.0f}%)"
            f" {flag}"
        )
    if not lines:
        lines.append("no workloads in common")
    return "\n".join(lines), regressions
