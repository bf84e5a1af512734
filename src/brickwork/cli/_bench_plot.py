"""``brickwork bench --sweep ... --plot out.png``: throughput, latency p50/p99 and each stage's
utilisation against concurrency, in one PNG (matplotlib, the ``viz`` extra)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["check_plotting", "plot_sweep"]


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'brickwork[viz]'") from exc


def plot_sweep(results: list[dict[str, Any]], path: str) -> None:
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = [r["concurrency"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(conc, [r["throughput_req_s"] for r in results], "o-", color="#2f6f4f")
    ax.set_title("throughput")
    ax.set_ylabel("requests / s")
    ax = axes[1]
    ax.plot(conc, [r["latency_s"]["p50"] * 1e3 for r in results], "o-", label="p50", color="#3572b0")
    ax.plot(conc, [r["latency_s"]["p99"] * 1e3 for r in results], "s--", label="p99", color="#c0392b")
    ax.set_title("latency")
    ax.set_ylabel("ms")
    ax.legend()
    ax = axes[2]
    stages = list(results[0]["stages"])
    for name in stages:
        ax.plot(conc, [r["stages"].get(name, {}).get("utilisation", 0.0) * 100 for r in results], "o-", label=name)
    ax.set_title("stage utilisation")
    ax.set_ylabel("% busy")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=2 if len(stages) > 4 else 1)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc, [str(c) for c in conc])
        ax.set_xlabel("concurrent callers")
        ax.grid(alpha=0.3)
    fig.suptitle(f"brickwork bench: {results[0]['pipeline']} ({results[0]['backend']} backend)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
