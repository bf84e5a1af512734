"""The optimize report: a terminal table and a PNG chart of speed against accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # _optimize imports this module (lazily) to draw its chart
    from ._optimize import BrickReport

__all__ = ["report_chart", "report_table"]


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "-" if value is None else format(value, fmt) + unit


def report_table(report: BrickReport) -> str:
    """The report as a terminal table, one row per variant, then the choice and the files."""
    acc_head = "accuracy" if report.labels else "agree"
    lines = [f"brick {report.brick!r} ({report.kind}, {report.source})",
             f"  {report.host}; {report.eval_rows} eval rows{' with labels' if report.labels else ''}, "
             f"budget {report.budget:.2%}, speedup by {report.clock} clock"]
    if report.export:
        diffs = report.export["max_abs_diff"]
        lines.append(f"  exported to ONNX: max |Δ| {max(diffs.values(), default=0.0):.2g} over "
                     f"{report.export['rows']} rows, label mismatches {report.export['mismatches'] or 0}")
    lines.append(f"  {'variant':<14}{'lat b1':>10}{'items/s':>11}{'/cpu-s':>11}{'batch':>7}{'speedup':>9}{'size':>10}"
                 f"{acc_head:>10}{'loss':>8}{'min cos':>9}{'max dev':>9}  status")
    for v in report.variants:
        size = "-" if v.size_bytes is None else f"{v.size_bytes / 1e6:.2f} MB"
        acc = v.accuracy if report.labels else v.agreement
        lines.append(
            f"  {v.name:<14}{_num(None if v.latency_s is None else v.latency_s * 1e3, '.3f', ' ms'):>10}"
            f"{_num(v.throughput, ',.0f'):>11}{_num(v.cpu_throughput, ',.0f'):>11}"
            f"{_num(v.batch_size, 'd'):>7}{_num(v.speedup, '.2f', 'x'):>9}"
            f"{size:>10}{_num(acc, '.4f'):>10}{_num(None if v.loss is None else v.loss * 100, '.2f', '%'):>8}"
            f"{_num(v.min_cosine, '.4f'):>9}{_num(v.max_abs_dev, '.2g'):>9}  {v.status}"
            + (f": {v.reason}" if v.reason and v.status not in ("chosen", "accepted", "baseline") else ""))
    lines.append(f"  choice: {report.why}")
    for what, path in report.written.items():
        lines.append(f"  wrote {what:<6} {path}")
    return "\n".join(lines)


def report_chart(report: BrickReport, path: Path) -> bool:
    """Speedup over FP32 (x, by the report's clock) against accuracy or agreement (y), one point
    per measured variant; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    measured = [v for v in report.variants if v.speedup is not None]
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    colors = {"chosen": "tab:green", "baseline": "tab:blue", "over-budget": "tab:red", "accepted": "tab:olive"}
    for i, v in enumerate(sorted(measured, key=lambda m: m.speedup or 0.0)):
        y = (v.accuracy if report.labels else v.agreement) or 0.0
        x = v.speedup or 0.0
        ax.scatter([x], [y], color=colors.get(v.status, "tab:gray"), s=60, zorder=3)
        ax.annotate(f"{v.name} ({v.status})", (x, y), textcoords="offset points", fontsize=8,
                    xytext=(6, 6 if i % 2 == 0 else -12))
    base = next((v for v in measured if v.name == "fp32"), None)
    y0 = None if base is None else (base.accuracy if report.labels else base.agreement)
    if y0 is not None:
        ax.axhline(y0 - report.budget, color="tab:red", linestyle="--", linewidth=1,
                   label=f"budget: {report.budget:.2%} below FP32")
        ax.axvline(1.0, color="tab:blue", linestyle=":", linewidth=1, label="FP32 speed")
        ax.legend(loc="best", fontsize=8)
    batch = measured[0].batch_size if measured else "?"
    ax.set_xlabel(f"throughput / FP32's at batch {batch} ({report.clock} clock)")
    ax.set_ylabel("accuracy vs labels" if report.labels else "agreement with FP32 (share of items)")
    ax.set_title(f"brickwork optimize: brick {report.brick!r} -> {report.chosen}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
