"""``optimize``: export, build variants, measure them all in one run, keep the fastest one that
stays within the accuracy budget, and write it (plus a report and a YAML) beside the original."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._data import Dataset, load_dataset
from ._export import ExportResult, export_onnx, place
from ._host import Host, host
from ._measure import Quality, Speed, best, compare, outputs_of, speed_round
from ._patch import patch_text, unified_diff
from ._pipeline import make_brick, model_bricks, pipeline_doc
from ._progress import Progress
from ._variants import CPU_VARIANTS, GPU_VARIANTS, Built, Refuse, Skip, build_variant

__all__ = ["BrickReport", "OptimizeConfig", "VariantResult", "optimize"]

@dataclass(frozen=True, slots=True)
class OptimizeConfig:
    """How ``optimize`` measures and chooses.

    budget: the largest accuracy loss accepted, as a fraction (0.005 = 0.5 percentage points of
        accuracy with labels; without labels, the share of items allowed to disagree with FP32).
    min_cosine: without labels, an item's float outputs agree with FP32 when their cosine
        similarity is at least this. Default 0.99.
    min_speedup: a variant must reach this throughput ratio over FP32 to be worth swapping in
        (1.10 = 10 % faster; below that is within a shared machine's noise). Default 1.10.
    variants: which to try (default: every CPU and GPU variant; GPU ones skip themselves).
    batch_size: throughput batch size; None = the stage's max_batch_size, at most the data's rows.
    measure_s: seconds of timing per variant, split over ``rounds`` alternating rounds. Default 3.0.
    output: the output that holds the predicted class (for accuracy against labels);
        None = ``label``, else the argmax of the first (N, C) float output.
    clock: what ``speedup`` compares: "wall" (items per second, what callers see; default) or
        "cpu" (items per CPU second of the process, for a machine shared with other jobs,
        where the wall clock mostly measures the neighbours).
    progress: a progress bar on stderr. Default True.
    """

    budget: float = 0.005
    min_cosine: float = 0.99
    min_speedup: float = 1.10
    variants: tuple[str, ...] = CPU_VARIANTS + GPU_VARIANTS
    batch_size: int | None = None
    measure_s: float = 3.0
    rounds: int = 3
    output: str | None = None
    progress: bool = True
    clock: str = "wall"

    def __post_init__(self) -> None:
        if not 0 <= self.budget < 1:
            raise ConfigError(f"budget must be a fraction in [0, 1) such as 0.005 for 0.5 %, got {self.budget!r}")
        unknown = sorted(set(self.variants) - set(CPU_VARIANTS) - set(GPU_VARIANTS))
        if unknown:
            raise ConfigError(f"unknown variant(s) {unknown}; known: {[*CPU_VARIANTS, *GPU_VARIANTS]}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 or None, got {self.batch_size}")
        if self.clock not in ("wall", "cpu"):
            raise ConfigError(f"clock must be 'wall' or 'cpu', got {self.clock!r}")
        if self.rounds < 1 or self.measure_s <= 0:
            raise ConfigError("rounds must be >= 1 and measure_s > 0")


@dataclass(frozen=True, slots=True)
class VariantResult:
    """status: baseline | chosen | accepted (within budget, not the fastest) | slower |
    over-budget | refused (fragile: inf/NaN) | skipped | failed. reason says why."""

    name: str
    status: str
    reason: str = ""
    notes: str = ""
    size_bytes: int | None = None
    latency_s: float | None = None
    throughput: float | None = None
    cpu_throughput: float | None = None
    batch_size: int | None = None
    speedup: float | None = None
    accuracy: float | None = None
    loss: float | None = None
    agreement: float | None = None
    min_cosine: float | None = None
    mean_cosine: float | None = None
    max_abs_dev: float | None = None


@dataclass(frozen=True, slots=True)
class BrickReport:
    """One brick's outcome: every variant's figures, the choice and where things were written."""

    brick: str
    kind: str
    source: str
    host: str
    budget: float
    clock: str
    eval_rows: int
    labels: bool
    variants: tuple[VariantResult, ...]
    chosen: str
    why: str
    export: dict[str, Any] | None = None
    written: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # brick options the chosen variant needs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BrickReport:
        """Back from :meth:`to_dict` (the ``--json`` file)."""
        fields = dict(data)
        fields["variants"] = tuple(VariantResult(**v) for v in fields["variants"])
        return cls(**fields)

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.name == name)


def _stage_batch(doc: Mapping[str, Any], entry: Mapping[str, Any]) -> int | None:
    for source in (entry.get("batching"), (doc.get("defaults") or {}).get("batching")):
        if isinstance(source, Mapping) and source.get("max_batch_size"):
            return int(source["max_batch_size"])
    return None


def _onnx_brick(built: Built, original: Any) -> Any:
    from ..bricks.onnx import OnnxBrick

    opts: dict[str, Any] = {}
    if original is not None and getattr(original, "kind", None) == "onnx":
        opts = {k: getattr(original, k) for k in ("intra_op_threads", "inter_op_threads")}
    brick = OnnxBrick(built.path, name=built.path.stem, providers=list(built.providers) if built.providers else None,
                      **opts)
    brick.load()
    return brick


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def optimize_brick(pipeline: Path, name: str, *, data: str | Path | Mapping[str, Any],
                   eval_data: str | Path | Mapping[str, Any] | None = None, write: bool = False,
                   config: OptimizeConfig | None = None, machine: Host | None = None) -> BrickReport:
    """Optimise one brick of a pipeline file; see :func:`optimize`."""
    cfg = config or OptimizeConfig()
    doc = pipeline_doc(pipeline)
    models = model_bricks(doc)
    if name not in models:
        raise ConfigError(f"brick {name!r} is not an onnx, torch or sklearn brick of {str(pipeline)!r}; "
                          f"those are {sorted(models)}")
    kind, entry = models[name]
    base_dir = pipeline.parent
    original = make_brick(kind, entry, base_dir, name)
    original.load()
    calib = load_dataset(data, original.signature, brick=name)
    evaluation = load_dataset(eval_data, original.signature, brick=name) if eval_data is not None else calib
    machine = machine or host()
    if kind == "onnx":
        target = Path(original.path)
    else:
        src = Path(str(entry[kind])) if isinstance(entry[kind], str) else Path(name)
        target = (base_dir / src).with_suffix(".onnx") if isinstance(entry[kind], str) else base_dir / f"{name}.onnx"
    exported = export_onnx(original, calib, target=target, write=write)
    if exported.exported:
        _say(cfg.progress, f"{name}: exported {kind} -> {exported.path} (max |Δ| "
                           f"{max(exported.max_abs_diff.values(), default=0.0):.2g} on {exported.rows} rows)")
    if exported.exported:  # the variants take the ONNX file's dtypes (sklearn: FP32, not FP64)
        from ..bricks.onnx import OnnxBrick

        signature = OnnxBrick(exported.path, name=name).signature
        calib = load_dataset(data, signature, brick=name)
        evaluation = load_dataset(eval_data, signature, brick=name) if eval_data is not None else calib
    batch = min(cfg.batch_size or _stage_batch(doc, entry) or 32, len(evaluation))
    with tempfile.TemporaryDirectory(prefix=f"bw-optimize-{name}-") as tmp:
        report = _run(name, kind, exported, original, calib, evaluation, batch, cfg, machine, Path(tmp))
        return _write(report, pipeline, exported, entry, write, Path(tmp))


def _run(name: str, kind: str, exported: ExportResult, original: Any, calib: Dataset, evaluation: Dataset,
         batch: int, cfg: OptimizeConfig, machine: Host, work: Path) -> BrickReport:
    src = exported.path
    built: dict[str, Built] = {}
    results: dict[str, VariantResult] = {}
    for variant in dict.fromkeys(("fp32", *cfg.variants)):
        try:
            built[variant] = build_variant(variant, src, work, data=calib, host=machine, progress=cfg.progress)
        except Skip as exc:
            results[variant] = VariantResult(variant, "skipped", str(exc))
        except Refuse as exc:
            results[variant] = VariantResult(variant, "refused", str(exc))
        except Exception as exc:  # a converter's own failure is a finding, not a crash
            results[variant] = VariantResult(variant, "failed", f"{type(exc).__name__}: {exc}"[:300])
    bricks: dict[str, Any] = {}
    for variant, b in built.items():
        try:
            bricks[variant] = _onnx_brick(b, original if kind == "onnx" else None)
        except Exception as exc:
            results[variant] = VariantResult(variant, "failed", f"does not load: {exc}"[:300])
    if "fp32" not in bricks:
        raise ConfigError(f"brick {name!r}: the FP32 model does not run: {results['fp32'].reason}")
    ref = outputs_of(bricks["fp32"], evaluation, batch)
    quality: dict[str, Quality] = {}
    for variant, brick in list(bricks.items()):
        try:
            q = compare(outputs_of(brick, evaluation, batch), ref, evaluation.labels,
                        min_cosine=cfg.min_cosine, output=cfg.output)
        except Exception as exc:
            results[variant] = VariantResult(variant, "failed", f"{type(exc).__name__}: {exc}"[:300])
            del bricks[variant]
            continue
        quality[variant] = q
        if not q.finite:
            results[variant] = VariantResult(
                variant, "refused", f"fragile: output {q.nonfinite_output!r} has inf/NaN where FP32 is finite "
                f"(an overflow: FP16 tops out at 65504)", built[variant].notes)
            del bricks[variant]
    speeds: dict[str, list[Speed]] = {v: [] for v in bricks}
    with Progress("benchmark rounds", cfg.rounds * len(bricks), enabled=cfg.progress) as bar:
        for _ in range(cfg.rounds):
            for variant, brick in bricks.items():
                speeds[variant].append(speed_round(brick, evaluation, batch, cfg.measure_s / cfg.rounds))
                bar.advance()
    base_speed = best(speeds["fp32"])
    rate = (lambda sp: sp.throughput) if cfg.clock == "wall" else (lambda sp: sp.cpu_throughput)
    base_q = quality["fp32"]
    for variant in bricks:
        s, q = best(speeds[variant]), quality[variant]
        loss = (base_q.accuracy - q.accuracy) if (q.accuracy is not None and base_q.accuracy is not None) \
            else 1.0 - q.agreement
        results[variant] = VariantResult(
            variant, "baseline" if variant == "fp32" else "pending", notes=built[variant].notes,
            size_bytes=built[variant].path.stat().st_size, latency_s=s.latency_s, throughput=s.throughput,
            cpu_throughput=s.cpu_throughput, batch_size=s.batch_size, speedup=rate(s) / rate(base_speed),
            accuracy=q.accuracy,
            loss=loss, agreement=q.agreement, min_cosine=q.min_cosine, mean_cosine=q.mean_cosine,
            max_abs_dev=q.max_abs_dev)
    chosen, why = _choose(results, cfg)
    ordered = tuple(results[v] for v in dict.fromkeys(("fp32", *cfg.variants)) if v in results)
    return BrickReport(
        brick=name, kind=kind, source=str(src), host=machine.describe(), budget=cfg.budget, clock=cfg.clock,
        eval_rows=len(evaluation), labels=evaluation.labels is not None, variants=ordered, chosen=chosen,
        why=why, export=({"path": str(exported.path), "max_abs_diff": exported.max_abs_diff,
                          "mismatches": exported.mismatches, "rows": exported.rows}
                         if exported.exported else None),
        written={"_built": str(built[chosen].path)} if chosen != "fp32" else {},
        options=dict(built[chosen].brick_options))


def _choose(results: dict[str, VariantResult], cfg: OptimizeConfig) -> tuple[str, str]:
    candidates = []
    for name, r in list(results.items()):
        if r.status != "pending":
            continue
        assert r.loss is not None and r.speedup is not None
        if r.loss > cfg.budget + 1e-12:
            what = "accuracy" if r.accuracy is not None else f"agreement (cosine >= {cfg.min_cosine:g})"
            results[name] = replace(r, status="over-budget",
                                    reason=f"{what} loss {r.loss:.2%} > budget {cfg.budget:.2%}")
        elif r.speedup < cfg.min_speedup:
            results[name] = replace(r, status="slower",
                                    reason=f"{r.speedup:.2f}x FP32 throughput < {cfg.min_speedup:.2f}x")
        else:
            candidates.append(name)
            results[name] = replace(r, status="accepted", reason="within budget, faster")
    if not candidates:
        tried = [r for r in results.values() if r.name != "fp32" and r.status != "skipped"]
        skipped = [r.name for r in results.values() if r.status == "skipped"]
        reasons = "; ".join(f"{r.name}: {r.status}" + (f" ({r.reason})" if r.reason else "") for r in tried)
        tail = f"; skipped: {', '.join(skipped)}" if skipped else ""
        return "fp32", (f"kept FP32: no variant is both faster and within the {cfg.budget:.2%} budget — "
                        f"{reasons or 'none could be built'}{tail}")
    top = max(candidates, key=lambda n: results[n].speedup or 0.0)
    r = results[top]
    results[top] = replace(r, status="chosen", reason="fastest within budget")
    clock = "" if cfg.clock == "wall" else " (CPU time)"
    return top, (f"{top}: {r.speedup:.2f}x FP32 throughput{clock} at batch {r.batch_size}, "
                 f"loss {r.loss:.2%} <= budget {cfg.budget:.2%}")


def _write(report: BrickReport, pipeline: Path, exported: ExportResult, entry: Mapping[str, Any], write: bool,
           work: Path) -> BrickReport:
    from ._report import report_chart

    written: dict[str, str] = {}
    stem = exported.path.with_suffix("")
    if report.chosen != "fp32":
        built = Path(report.written["_built"])
        model = stem.with_name(f"{stem.name}.{report.chosen}.onnx")
        if built.resolve() != exported.path.resolve():
            tmp = work / "chosen.onnx"
            shutil.copyfile(built, tmp)
            place(tmp, model, write=write)
        else:
            model = exported.path
        written["model"] = str(model)
        options = report.options or None
        old = pipeline.read_text(encoding="utf-8")
        new = patch_text(old, report.brick, model, base_dir=pipeline.parent, options=options)
        out_yaml = pipeline if write else pipeline.with_name(f"{pipeline.stem}.optimized{pipeline.suffix}")
        if not write and out_yaml.exists() and out_yaml.read_text(encoding="utf-8") != new:
            # our own earlier output for another brick: patch that one further
            new = patch_text(out_yaml.read_text(encoding="utf-8"), report.brick, model,
                             base_dir=pipeline.parent, options=options)
        out_yaml.write_text(new, encoding="utf-8")
        written["yaml"] = str(out_yaml)
        patch = stem.with_name(f"{stem.name}.optimize.patch")
        patch.write_text(unified_diff(old, new, pipeline, out_yaml), encoding="utf-8")
        written["patch"] = str(patch)
    report = replace(report, written=written)
    json_path = stem.with_name(f"{stem.name}.optimize.json")
    png = stem.with_name(f"{stem.name}.optimize.png")
    if report_chart(report, png):
        written["chart"] = str(png)
    written["json"] = str(json_path)
    report = replace(report, written=written)
    json_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def optimize(pipeline: str | Path, *, data: str | Path | Mapping[str, Any],
             brick: str | Sequence[str] | None = None, eval_data: str | Path | Mapping[str, Any] | None = None,
             budget: float | None = None, write: bool = False,
             config: OptimizeConfig | None = None) -> list[BrickReport]:
    """Make a pipeline's model bricks faster where that stays accurate.

    For each brick (``brick``: a name or names; None = every onnx/torch/sklearn brick whose
    inputs are all in ``data``): export it to ONNX (torch, sklearn; parity-checked), build the
    variants, measure speed and quality of all of them in one run, and choose the fastest one
    whose loss is within ``budget`` (a fraction; default 0.005) and that beats FP32 by
    ``config.min_speedup``; else keep FP32 and say why.

    data: calibration rows, a ``.npz``/JSON file or a mapping of the brick's input names to arrays.
    eval_data: held-out rows, optionally with ``label``; None = measure on ``data``.
    write: replace existing files (the pipeline file itself is patched in place); otherwise the
        chosen model lands beside the original as ``<model>.<variant>.onnx`` and the YAML as
        ``<pipeline>.optimized.yaml``, and nothing that exists is overwritten.

    Returns one :class:`BrickReport` per brick; each is also written as ``<model>.optimize.json``
    with a chart ``<model>.optimize.png``.
    """
    cfg = config or OptimizeConfig()
    if budget is not None:
        cfg = replace(cfg, budget=budget)
    path = Path(pipeline)
    if isinstance(brick, str):
        names = [brick]
    elif brick is not None:
        names = list(brick)
    else:
        doc = pipeline_doc(path)
        models = model_bricks(doc)
        keys = set(_read_keys(data))
        names = [n for n, (kind, entry) in models.items()
                 if set(make_brick(kind, entry, path.parent, n).signature.input_names) <= keys]
        if not names:
            raise ConfigError(f"no model brick of {str(path)!r} takes the tensors in the data ({sorted(keys)}); "
                              f"name one with brick= (model bricks: {sorted(models)})")
    return [optimize_brick(path, n, data=data, eval_data=eval_data, write=write, config=cfg) for n in names]


def _read_keys(data: str | Path | Mapping[str, Any]) -> list[str]:
    from ._data import _read

    return list(_read(data)[0])
