"""The benchmark's results as Markdown tables (what `make bench` prints and docs/benchmarks.md holds)
and the shape check the smoke test applies to them."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "vs_raw": 0.8,
    "vs_kopf_minimal": 0.9,
    "idle_p95_ms": 300.0,
    "burst_p95_ms": 2000.0,
    "rss_mb": 150.0,
    "sidecar_us": 1000.0,
    "sidecar_ratio": 3.0,
}


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join("" if c is None else str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def traffic_table(rows: list[dict[str, Any]]) -> list[str]:
    """The traffic scenario: per model per minute, the baseline beside this checkout."""
    lines = [
        "### Steady state with live sidecars, per model per minute (target: status writes <= 1 per cost "
        "window, i.e. <= 0.1/min with the 10 m default)",
        "",
    ]
    lines += _table(
        [
            "operator",
            "N",
            "window s",
            "API requests",
            "etcd writes",
            "status writes",
            "passes",
            "scrapes",
            "operator CPU %",
            "RSS MB",
            "requests by kind",
        ],
        [
            [
                r["variant"],
                r["models"],
                r["window_seconds"],
                r["api_requests_per_model_per_minute"],
                r["etcd_writes_per_model_per_minute"],
                r["status_writes_per_model_per_minute"],
                r["passes_per_model_per_minute"],
                r["scrapes_per_model_per_minute"],
                r["operator_cpu_percent"],
                r["operator_rss_mb"],
                ", ".join(f"{k} {v}" for k, v in r["requests_per_model_per_minute"].items()),
            ]
            for r in rows
            if "error" not in r
        ],
    )
    lines += [f"\n{r['variant']} at N = {r['models']}: {r['error']}" for r in rows if "error" in r]
    return lines


def tables(results: dict[str, Any]) -> str:
    if "reconcile" not in results:
        return "\n".join(traffic_table(results.get("traffic", [])))
    reconcile = results["reconcile"]
    lines: list[str] = ["### Throughput (burst of N models until every one is settled)", ""]
    lines += _table(
        [
            "variant",
            "N",
            "seconds",
            "models/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "CPU s: operator / API server / etcd / client",
        ],
        [
            [
                r["variant"],
                r["models"],
                r["seconds"],
                r["models_per_second"],
                *(
                    (r["apply_to_children"][k] for k in ("p50_ms", "p95_ms", "p99_ms"))
                    if "apply_to_children" in r
                    else ("-", "-", "-")
                ),
                " / ".join(
                    str(r["cpu_seconds"].get(k, "-"))
                    for k in ("operator", "kube-apiserver", "etcd", "bench client")
                ),
            ]
            for r in reconcile["throughput"]
        ],
    )
    lines += ["", "### datajax's rate as a ratio (targets: >= 0.8 x raw, >= 0.9 x kopf-minimal)", ""]
    lines += _table(
        ["N", "datajax / raw", "datajax / kopf-minimal"],
        [[r["models"], r["vs_raw"], r["vs_kopf_minimal"]] for r in reconcile["ratios"]],
    )
    idle = reconcile["idle_latency"]
    largest = max(reconcile["throughput"], key=lambda r: (r["variant"] == "datajax", r["models"]))
    burst = largest.get("apply_to_children", {})
    lines += [
        "",
        "### Latency apply -> children created (targets: p95 <= 300 ms idle, <= 2 s in the burst)",
        "",
    ]
    lines += _table(
        ["when", "samples", "p50 ms", "p95 ms", "p99 ms"],
        [
            ["idle", idle.get("samples"), idle.get("p50_ms"), idle.get("p95_ms"), idle.get("p99_ms")],
            [
                f"during the {largest['models']} burst",
                burst.get("samples"),
                burst.get("p50_ms"),
                burst.get("p95_ms"),
                burst.get("p99_ms"),
            ],
        ],
    )
    lines += ["", "### Steady state (nothing changing; target: 0 writes, RSS <= 150 MB)", ""]
    lines += _table(
        [
            "N",
            "window s",
            "writes/min",
            "status-figure writes/min",
            "write requests/min (no-op applies)",
            "reconciles/min",
            "operator CPU %",
            "operator RSS MB",
        ],
        [
            [
                s["models"],
                s["window_seconds"],
                s["writes_per_minute"],
                s["status_figure_writes_per_minute"],
                ", ".join(f"{k} {v}" for k, v in s["write_requests_per_minute"].items()) or 0,
                s["reconciles_per_minute"],
                s["operator_cpu_percent"],
                s["operator_rss_mb"],
            ]
            for s in reconcile["steady_state"]
        ],
    )
    if results.get("traffic"):
        lines += ["", *traffic_table(results["traffic"])]
    lines += ["", "### Sidecar: one scrape-and-compute (targets: <= 1 ms, >= 3 x prometheus_client)", ""]
    lines += _table(
        [
            "input",
            "KiB",
            "samples",
            "datajax us (CPU)",
            "prometheus_client us (CPU)",
            "ratio wall",
            "ratio CPU",
        ],
        [
            [
                r["input"],
                r["kib"],
                r["samples"],
                f"{r['datajax_us']} ({r['datajax_cpu_us']})",
                f"{r['baseline_us']} ({r['baseline_cpu_us']})",
                r["ratio"],
                r["cpu_ratio"],
            ]
            for r in results.get("sidecar", [])
        ],
    )
    profile = largest.get("profile")
    if profile:
        lines += [
            "",
            f"### Where the operator's time goes (py-spy --gil, {profile['samples']} samples, "
            f"burst of {largest['models']})",
            "",
        ]
        lines += _table(["stage", "share"], [[s["stage"], s["share"]] for s in profile["stages"]])
        lines += [""]
        lines += _table(["self frame", "share"], [[s["frame"], s["share"]] for s in profile["self_top"]])
    return "\n".join(lines)


def check(results: dict[str, Any]) -> None:
    """Raise AssertionError unless every figure a run must produce is there and plausible."""
    for r in results.get("traffic", []):
        if "error" in r:
            continue
        assert r["passes_per_model_per_minute"] > 0 and r["scrapes_per_model_per_minute"] > 0, r
        assert r["api_requests_per_model_per_minute"] > 0 and r["operator_rss_mb"] > 10, r
    if "reconcile" not in results:
        return
    reconcile = results["reconcile"]
    sizes = sorted({r["models"] for r in reconcile["throughput"]})
    variants = {(r["variant"], r["models"]) for r in reconcile["throughput"]}
    assert variants == {(v, n) for v in ("raw", "kopf-minimal", "datajax") for n in sizes}, variants
    for r in reconcile["throughput"]:
        assert r["seconds"] > 0 and r["models_per_second"] > 0, r
        assert {"kube-apiserver", "etcd", "bench client"} <= set(r["cpu_seconds"]), r
        if r["variant"] != "kopf-minimal":
            assert r["apply_to_children"]["samples"] == r["models"], r
            assert 0 < r["apply_to_children"]["p50_ms"] <= r["apply_to_children"]["p99_ms"], r
    for ratio in reconcile["ratios"]:
        assert ratio["vs_raw"] > 0 and ratio["vs_kopf_minimal"] > 0, ratio
    assert [s["models"] for s in reconcile["steady_state"]] == sizes
    for s in reconcile["steady_state"]:
        assert s["writes_per_minute"] >= 0 and s["operator_rss_mb"] > 10, s
        assert s["reconciles_per_minute"] > 0, f"no resync seen in the window: {s}"
    assert reconcile["idle_latency"]["samples"] > 0
    assert len(results["sidecar"]) == 2 and all(r["ratio"] > 0 for r in results["sidecar"])
    assert results["machine"]["cores"] >= 1
