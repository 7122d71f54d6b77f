"""Tables of kernel results, as aligned text (stdout) or Markdown (README)."""

from __future__ import annotations

import math

from benchmarks._src.peers import JAX_LIBRARY_PEERS

TARGET_VS_JNP = 1.10


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def fmt_error(record: dict) -> str:
    if "max_rel_err" not in record:
        return ""
    error = record["max_rel_err"]
    text = f"{error:.1e}" if math.isfinite(error) else "inf"
    return text if record.get("correct") else f"{text} WRONG"


def table(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def record_row(record: dict) -> list[str]:
    if record.get("status") != "ok":
        return [record["peer"], record["mode"], record.get("status", "?"), "", "", "", "", ""]
    compile_s = record.get("compile_s")
    compile_text = (
        fmt_time(compile_s)
        if compile_s is not None
        else (f"eager ({fmt_time(record['first_call_s'])} first)")
    )
    spread = f"{fmt_time(record['p25_s'])}–{fmt_time(record['p75_s'])}"
    gbps = f"{record['gbps']:.1f}" if "gbps" in record else ""
    vs_floor = fmt_ratio(record.get("vs_floor")) if "vs_floor" in record else ""
    return [
        record["peer"],
        record["mode"],
        compile_text,
        fmt_time(record["median_s"]),
        spread,
        fmt_error(record),
        gbps,
        vs_floor,
    ]


RECORD_HEADERS = ["peer", "mode", "compile", "median", "IQR", "max rel err", "GB/s", "×floor"]


def case_text(workload, batch: int, dim: int, dtype: str, records: list[dict]) -> str:
    head = (
        f"\n{workload.name} · {workload.batch_label} {batch} · {workload.dim_label} {dim} · {dtype}"
    )
    return head + "\n" + table(RECORD_HEADERS, [record_row(r) for r in records])


def _ok(record: dict) -> bool:
    return record.get("status") == "ok" and "median_s" in record


def _ratio(numerator: dict | None, denominator: dict | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator["median_s"] / denominator["median_s"]


def headline_rows(result: dict) -> list[dict]:
    """genmath against jnp and the fastest correct JAX library peer, per headline case."""
    rows = []
    dtypes = sorted({r["dtype"] for r in result["records"]}, key=lambda d: d != "float32")
    for name, meta in result["workloads"].items():
        for dtype in dtypes:
            for mode in ("forward", "value_and_grad"):
                case = [
                    r
                    for r in result["records"]
                    if r["workload"] == name
                    and r["batch"] == meta["headline_batch"]
                    and r["dim"] == meta["dim"]
                    and r["dtype"] == dtype
                    and r["mode"] == mode
                    and _ok(r)
                ]
                if not case:
                    continue
                by_peer = {r["peer"]: r for r in case}
                genmath, jnp_ = by_peer.get("genmath"), by_peer.get("jnp")
                library = [r for r in case if r["peer"] in JAX_LIBRARY_PEERS and r.get("correct")]
                best = min(library, key=lambda r: r["median_s"]) if library else None
                rows.append(
                    {
                        "workload": name,
                        "dtype": dtype,
                        "mode": mode,
                        "batch": meta["headline_batch"],
                        "dim": meta["dim"],
                        "genmath": genmath,
                        "jnp": jnp_,
                        "best": best,
                        "vs_jnp": _ratio(genmath, jnp_),
                        "vs_best": _ratio(genmath, best),
                    }
                )
    return rows


def _verdict(row: dict) -> str:
    missed = []
    if row["vs_jnp"] is not None and row["vs_jnp"] > TARGET_VS_JNP:
        missed.append(f"> {TARGET_VS_JNP:.2f}× jnp")
    within_noise = None
    if row["vs_best"] is not None and row["vs_best"] > 1.0:
        if _quartiles_overlap(row["genmath"], row["best"]):
            within_noise = row["best"]["peer"]
        else:
            missed.append("slower than " + row["best"]["peer"])
    genmath = row["genmath"]
    if genmath is not None and genmath.get("correct") is False:
        missed.append("WRONG")
    if missed:
        return "✗ " + ", ".join(missed)
    return "✓" if within_noise is None else f"✓ (≈ {within_noise}, within noise)"


def _quartiles_overlap(a: dict, b: dict) -> bool:
    """Whether two timings' interquartile ranges overlap: a median gap inside the
    repetition-to-repetition spread is not evidence that one is slower."""
    if not all(key in r for r in (a, b) for key in ("p25_s", "p75_s")):
        return False
    return a["p25_s"] <= b["p75_s"] and b["p25_s"] <= a["p75_s"]


def summary_table(result: dict, markdown: bool = False) -> str:
    headers = [
        "workload",
        "dtype",
        "mode",
        "size",
        "genmath",
        "jnp",
        "best JAX peer",
        "genmath/jnp",
        "genmath/best",
        "genmath err",
        "target",
    ]
    rows = []
    for row in headline_rows(result):
        best = row["best"]
        genmath = row["genmath"] or {}
        rows.append(
            [
                row["workload"],
                row["dtype"],
                row["mode"],
                f"{row['batch']}×{row['dim']}",
                fmt_time(genmath.get("median_s")),
                fmt_time((row["jnp"] or {}).get("median_s")),
                f"{fmt_time(best['median_s'])} ({best['peer']})" if best else "—",
                fmt_ratio(row["vs_jnp"]),
                fmt_ratio(row["vs_best"]),
                fmt_error(genmath) if row["mode"] == "forward" else "",
                _verdict(row),
            ]
        )
    return table(headers, rows, markdown)


def summary_text(result: dict) -> str:
    lines = [
        f"Summary — {result['backend']}: {result['device']} (jax {result['jax']})",
        f"Copy bandwidth {result['copy_bandwidth']['gbps']:.1f} GB/s; "
        f"targets: genmath ≤ {TARGET_VS_JNP:.2f}× jnp and ≤ 1.00× the best JAX peer",
    ]
    for name, reason in result["unavailable"].items():
        lines.append(f"{name}: {reason}")
    lines.append(summary_table(result))
    lines += ["", ratios_by_batch_table(result)]
    return "\n".join(lines)


def ratios_by_batch_table(result: dict, markdown: bool = False) -> str:
    """genmath / jnp median-time ratio at every batch size of the batch sweep."""
    headers = ["workload", "dtype", "mode", "genmath / jnp at each batch size"]
    rows = []
    for name in result["workloads"]:
        for dtype in sorted({r["dtype"] for r in result["records"]}, key=lambda d: d != "float32"):
            for mode in ("forward", "value_and_grad"):
                medians: dict[int, dict[str, float]] = {}
                for r in result["records"]:
                    if (
                        r["workload"] == name
                        and r["dtype"] == dtype
                        and r["mode"] == mode
                        and "batch" in r["sweeps"]
                        and _ok(r)
                    ):
                        medians.setdefault(r["batch"], {})[r["peer"]] = r["median_s"]
                cells = [
                    f"{batch}: {m['genmath'] / m['jnp']:.2f}×"
                    for batch, m in sorted(medians.items())
                    if "genmath" in m and "jnp" in m
                ]
                if cells:
                    rows.append([name, dtype, mode, ", ".join(cells)])
    return table(headers, rows, markdown)


def source(result: dict) -> str:
    """ "Results file `results/<name>`. " for a results file the report loaded (it sets
    ``_file``), else nothing."""
    return f"Results file `results/{result['_file']}`. " if "_file" in result else ""
