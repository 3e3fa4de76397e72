"""Plain-text tables of benchmark rows."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_gemm_rows(rows: list[dict]) -> str:
    peers = sorted({p for r in rows for p in r["speedup"]})
    header = [
        "case",
        "pyengine GF/s",
        *(f"{p} GF/s" for p in peers),
        *(f"vs {p}" for p in peers),
        "% peak",
        "GB/s",
        "% bw",
    ]
    body = []
    for r in rows:
        cells = [r["case"], f"{r['gflops']['pyengine']:.1f}"]
        cells += [f"{r['gflops'][p]:.1f}" if p in r["gflops"] else "-" for p in peers]
        cells += [f"{r['speedup'][p]:.2f}x" if p in r["speedup"] else "-" for p in peers]
        cells.append(f"{100 * r['gflops_vs_peak']:.0f}%")
        if "weight_gbs" in r:
            cells += [f"{r['weight_gbs']:.1f}", f"{100 * r['gbs_vs_bandwidth']:.0f}%"]
        else:
            cells += ["", ""]
        body.append(cells)
    return _table(header, body)
