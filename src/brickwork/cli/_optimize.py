"""``brickwork optimize FILE``: make model bricks faster where that stays accurate.

For each brick: export to ONNX (torch/sklearn, parity-checked), build variants (graph
optimisation, INT8 dynamic/mixed/static, FP16, GPU providers when present), measure speed and
accuracy of all of them on ``--data``/``--eval`` in one run, keep the fastest one within
``--budget``; else FP32 and why. Writes the chosen model beside the original, a report
(table here, ``--json``, a PNG chart) and a YAML pointing the brick at it; nothing that exists
is overwritten without ``--write``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["parse_budget", "register"]


def parse_budget(text: str) -> float:
    """"0.5%" -> 0.005; "0.005" -> 0.005."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
    except ValueError:
        raise ConfigError(f"--budget takes a fraction or a percentage such as 0.5%, got {text!r}") from None
    if not 0 <= value < 1:
        raise ConfigError(f"--budget must be between 0 and 100 %, got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("optimize", help="export, quantise and benchmark model bricks; keep the fastest accurate one")
    p.add_argument("file", metavar="FILE", help="pipeline YAML")
    p.add_argument("--brick", action="append", default=None, metavar="NAME",
                   help="brick to optimise (repeatable; default: every model brick whose inputs are in --data)")
    p.add_argument("--data", required=True, metavar="CALIB",
                   help="calibration rows: .npz or JSON object of the brick's input names to arrays")
    p.add_argument("--eval", dest="eval_data", default=None, metavar="DATA",
                   help="held-out rows, optionally with 'label' (default: --data)")
    p.add_argument("--budget", default="0.5%", help="largest accuracy loss accepted (default 0.5%%)")
    p.add_argument("--min-cosine", type=float, default=0.99,
                   help="without labels: an item agrees with FP32 at this cosine or more (default 0.99)")
    p.add_argument("--min-speedup", type=float, default=1.10,
                   help="throughput ratio over FP32 a variant must reach (default 1.10)")
    p.add_argument("--variants", default=None, help="comma-separated subset of variants to try")
    p.add_argument("--batch-size", type=int, default=None, help="throughput batch (default: the stage's)")
    p.add_argument("--measure-s", type=float, default=3.0, help="timing seconds per variant (default 3)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="speedup by wall time (default) or by CPU time (on a machine shared with other jobs)")
    p.add_argument("--output", default=None, help="output holding the predicted class (default: label)")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="also write the report here")
    p.add_argument("--write", action="store_true", help="replace existing files and patch FILE in place")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..accel import OptimizeConfig, optimize, report_table

    cfg = OptimizeConfig(budget=parse_budget(args.budget), min_cosine=args.min_cosine,
                         min_speedup=args.min_speedup, batch_size=args.batch_size, measure_s=args.measure_s,
                         output=args.output, progress=not args.no_progress, clock=args.clock)
    if args.variants:
        names = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        cfg = replace(cfg, variants=names)
    reports = optimize(args.file, data=args.data, brick=args.brick, eval_data=args.eval_data,
                       write=args.write, config=cfg)
    print("\n\n".join(report_table(r) for r in reports))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([r.to_dict() for r in reports], indent=2), encoding="utf-8")
    return 0
