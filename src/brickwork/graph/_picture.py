"""Plan → a picture: boxes and arrows laid out left to right, as SVG (no dependency) or PNG
(matplotlib, the ``viz`` extra). The same SVG is the graph the dashboard and the studio colour.

What is drawn: the pipeline's inputs and outputs, one box per stage call (worker, replicas,
batch size; ``data-stage`` names the stage), the adapters compile() inserted (a small box on
the edge, one per adapted port), edges labelled with the tensors they carry and their specs,
switch diamonds with one edge per case, ensemble vote nodes fed by their members, fallback
rungs chained by "on failure" edges, and a ladder's default answer.

Layout: nodes are ranked by their longest path from the inputs, long edges pass through
invisible waypoints, each rank is ordered by the barycentre of its neighbours (a few sweeps
down and up), then placed in columns. Deterministic: the same plan gives the same bytes.
"""

from __future__ import annotations

import html
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .. import plan as p
from ..errors import ConfigError

__all__ = ["Picture", "draw", "layout", "to_png", "to_svg"]

_CHAR_W = 6.6  # px per character at the 11 px label font (an estimate; labels are short)
_LINE_H = 14.0
_PAD_X, _PAD_Y = 10.0, 7.0
_RANK_GAP = 64.0
_NODE_GAP = 22.0
_MARGIN = 16.0


@dataclass(slots=True)
class PNode:
    key: str
    kind: str  # io | stage | adapter | switch | vote | default
    lines: list[str]
    stage: str | None = None
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass(slots=True)
class PEdge:
    src: str
    dst: str
    label: str = ""
    kind: str = "data"  # data | case | failure
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass(slots=True)
class Picture:
    name: str
    nodes: dict[str, PNode]
    edges: list[PEdge]
    width: float = 0.0
    height: float = 0.0

    def stages(self) -> list[str]:
        return [n.stage for n in self.nodes.values() if n.stage is not None]


def _spec(spec: Any) -> str:
    dims = ",".join("?" if d == -1 else str(d) for d in spec.shape)
    return f"{spec.dtype}[{dims}]"


class _Walker:
    def __init__(self, plan: p.Plan) -> None:
        self.plan = plan
        ins = [f"{t.name}: {_spec(t)}" for t in plan.inputs]
        outs = [f"{t.name}: {_spec(t)}" for t in plan.outputs]
        self.nodes: dict[str, PNode] = {
            "in": PNode("in", "io", ["inputs", *ins]),
            "out": PNode("out", "io", ["outputs", *outs]),
        }
        self.edges: list[PEdge] = []
        self.n = 0

    def new(self, kind: str, lines: list[str], stage: str | None = None) -> str:
        self.n += 1
        key = f"n{self.n}"
        self.nodes[key] = PNode(key, kind, lines, stage)
        return key

    def link(self, srcs: list[str], dst: str, label: str = "", kind: str = "data") -> None:
        for s in srcs:
            self.edges.append(PEdge(s, dst, label, kind))

    def walk(self, step: p.PlanStep, heads: list[str], mark: tuple[str, str] = ("", "data")) -> list[str]:
        """Draw ``step`` fed by ``heads``; the first edge drawn gets ``mark`` (a case value, "on
        failure"). Returns the nodes the next step is fed by."""
        if isinstance(step, p.Call):
            stage = self.plan.stages[step.stage]
            lines = [stage.name, f"{stage.worker} x{stage.options.replicas} · batch<={stage.batching.max_batch_size}"]
            key = self.new("stage", lines, stage.name)
            ports = {t.name: t for t in stage.signature.inputs}
            plain: list[tuple[p.Binding, str]] = []
            adapted: list[tuple[p.Binding, str]] = []
            for b in step.bindings:
                spec = ports.get(b.port)
                text = f"{b.source}: {_spec(spec)}" if spec is not None else b.source
                if b.source != b.port:
                    text = f"{b.source}→{b.port}" + (f": {_spec(spec)}" if spec is not None else "")
                (adapted if b.adapters else plain).append((b, text))
            feed = heads
            if adapted:
                akey = self.new("adapter", ["adapt", *(str(a) for b, _ in adapted for a in b.adapters)])
                self.link(heads, akey, mark[0], mark[1])
                mark = ("", "data")
                feed = [akey]
            label = mark[0] or "\n".join(t for _, t in [*plain, *adapted])
            self.link(feed, key, label, mark[1])
            return [key]
        if isinstance(step, p.Seq):
            for i, s in enumerate(step.steps):
                heads = self.walk(s, heads, mark if i == 0 else ("", "data"))
            return heads
        if isinstance(step, p.Par):
            return [t for s in step.steps for t in self.walk(s, heads, mark)]
        if isinstance(step, p.Vote):
            tails = [t for s in step.members for t in self.walk(s, heads, mark)]
            vote = [f"{step.name}", f"ensemble: {step.combiner} of {step.on}", f"→ {step.output}"]
            if step.label:
                vote.append(f"→ {step.label}")
            key = self.new("vote", vote)
            self.link(tails, key, step.on)
            return [key]
        if isinstance(step, p.Route):
            key = self.new("switch", [step.name, ("group by " if step.each else "switch on ") + step.on])
            self.link(heads, key, mark[0], mark[1])
            cases: list[tuple[str, p.PlanStep]] = [(f"= {v}", s) for v, s in step.cases]
            if step.default is not None:
                cases.append(("each" if step.each else "default", step.default))
            return [t for label, s in cases for t in self.walk(s, [key], (label, "case"))]
        if isinstance(step, p.Ladder):
            climbed: list[str] = []
            prev = heads
            for i, (label, s) in enumerate(step.rungs):
                start = len(self.edges)
                m = mark if i == 0 else (f"on failure → {label}", "failure")
                climbed += self.walk(s, prev, m)
                if len(self.edges) > start:
                    prev = [self.edges[start].dst]
            if step.default is not None:
                key = self.new("default", [f"{step.name}: default answer"])
                self.link(prev, key, "on failure", "failure")
                climbed.append(key)
            return climbed
        if isinstance(step, p.Scope):
            return self.walk(step.step, heads, mark)
        raise ConfigError(f"cannot draw {step!r}")


def draw(plan: p.Plan) -> Picture:
    """The plan's nodes and edges, laid out (coordinates in px)."""
    w = _Walker(plan)
    tails = w.walk(plan.root, ["in"])
    w.link(tails, "out", ", ".join(t.name for t in plan.outputs))
    out = w.nodes.pop("out")
    w.nodes["out"] = out  # last, so it is drawn after the rest
    pic = Picture(plan.name, w.nodes, w.edges)
    layout(pic)
    return pic


# -- layout -----------------------------------------------------------------------------------
def _size(node: PNode) -> None:
    width = max(len(line) for line in node.lines) * _CHAR_W + 2 * _PAD_X
    node.w = max(width, 40.0)
    node.h = len(node.lines) * _LINE_H + 2 * _PAD_Y
    if node.kind == "switch":  # a diamond needs room around its text
        node.w += 24
        node.h += 14
    if node.kind == "stage":  # a line for the dashboard's live figures
        node.h += _LINE_H


def layout(pic: Picture) -> None:
    for node in pic.nodes.values():
        _size(node)
    succ: dict[str, list[str]] = defaultdict(list)
    for e in pic.edges:
        succ[e.src].append(e.dst)
    rank: dict[str, int] = {k: 0 for k in pic.nodes}
    order = list(pic.nodes)  # insertion order is a topological order (the walk draws forward)
    for k in order:
        for d in succ[k]:
            rank[d] = max(rank[d], rank[k] + 1)
    rank["out"] = max(rank.values()) if len(rank) > 1 else 1
    rank["out"] = max(rank["out"], max((rank[e.src] + 1 for e in pic.edges if e.dst == "out"), default=1))
    # waypoints for edges longer than one rank
    chains: list[list[str]] = []
    ranks: dict[int, list[str]] = defaultdict(list)
    for k in order:
        ranks[rank[k]].append(k)
    dummy = 0
    for e in pic.edges:
        chain = [e.src]
        for r in range(rank[e.src] + 1, rank[e.dst]):
            dummy += 1
            key = f"~{dummy}"
            rank[key] = r
            ranks[r].append(key)
            chain.append(key)
        chain.append(e.dst)
        chains.append(chain)
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    nr = max(ranks) + 1
    for _sweep in range(4):
        for r in range(1, nr):
            _reorder(ranks[r], up, ranks[r - 1])
        for r in range(nr - 2, -1, -1):
            _reorder(ranks[r], down, ranks[r + 1])

    def height(k: str) -> float:
        return pic.nodes[k].h if k in pic.nodes else 8.0

    def width(k: str) -> float:
        return pic.nodes[k].w if k in pic.nodes else 0.0

    col_w = [max(width(k) for k in ranks[r]) for r in range(nr)]
    col_h = [sum(height(k) for k in ranks[r]) + _NODE_GAP * (len(ranks[r]) - 1) for r in range(nr)]
    total_h = max(col_h)
    centre: dict[str, tuple[float, float]] = {}
    gap = [_RANK_GAP] * nr  # wide enough for the labels of the edges leaving each rank
    for e in pic.edges:
        longest = max((len(line) for line in e.label.split("\n")), default=0)
        r = rank[e.src]
        gap[r] = max(gap[r], longest * _CHAR_W * 0.9 + 24)
    x = _MARGIN
    for r in range(nr):
        y = _MARGIN + (total_h - col_h[r]) / 2
        for k in ranks[r]:
            h = height(k)
            centre[k] = (x + col_w[r] / 2, y + h / 2)
            y += h + _NODE_GAP
        x += col_w[r] + gap[r]
    for k, node in pic.nodes.items():
        node.x, node.y = centre[k][0] - node.w / 2, centre[k][1] - node.h / 2
    for e, chain in zip(pic.edges, chains):
        src, dst = pic.nodes[e.src], pic.nodes[e.dst]
        pts = [(src.x + src.w, src.y + src.h / 2)]
        pts += [centre[k] for k in chain[1:-1]]
        pts.append((dst.x, dst.y + dst.h / 2))
        e.points = pts
    pic.width = x - gap[-1] + _MARGIN
    pic.height = total_h + 2 * _MARGIN


def _reorder(rank: list[str], neighbours: dict[str, list[str]], fixed: list[str]) -> None:
    pos = {k: i for i, k in enumerate(fixed)}
    here = {k: i for i, k in enumerate(rank)}
    rank.sort(key=lambda k: _bary(neighbours[k], pos, here[k]))


def _bary(neighbours: list[str], pos: dict[str, int], here: int) -> float:
    found = [pos[n] for n in neighbours if n in pos]
    return sum(found) / len(found) if found else float(here)


# -- SVG ----------------------------------------------------------------------------------------
_FILL = {"io": "#eef2f7", "stage": "#ffffff", "adapter": "#fff6d6", "switch": "#eaf4ff",
         "vote": "#f1ebff", "default": "#f4f4f4"}
_STROKE = {"io": "#6b7a90", "stage": "#2f4f6f", "adapter": "#b08a00", "switch": "#3572b0",
           "vote": "#6a4fb3", "default": "#888888"}
_EDGE = {"data": "#4a5568", "case": "#3572b0", "failure": "#c0392b"}


def _path(points: list[tuple[float, float]]) -> str:
    """A smooth curve through ``points``: horizontal tangents at each point."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        mx = (x0 + x1) / 2
        d.append(f"C{mx:.1f},{y0:.1f} {mx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(d)


def _label_at(points: list[tuple[float, float]]) -> tuple[float, float]:
    (x0, y0), (x1, y1) = points[0], points[1]
    return (x0 + x1) / 2, (y0 + y1) / 2


def to_svg(pic: Picture, *, standalone: bool = True) -> str:
    """The picture as SVG text. Stage boxes are ``<g class="node stage" data-stage=NAME>`` with
    an empty ``<text class="live">`` line, for pages that colour and annotate them."""
    esc = html.escape
    out = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>')
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" class="bw-graph" width="{pic.width:.0f}" '
               f'height="{pic.height:.0f}" viewBox="0 0 {pic.width:.0f} {pic.height:.0f}" '
               f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">')
    out.append(f"<title>{esc(pic.name)}</title>")
    out.append('<defs>' + "".join(
        f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
        for k, c in _EDGE.items()) + "</defs>")
    out.append('<rect width="100%" height="100%" fill="#ffffff"/>')
    for e in pic.edges:
        colour = _EDGE[e.kind]
        dash = ' stroke-dasharray="5,3"' if e.kind == "failure" else ""
        out.append(f'<g class="edge {e.kind}" data-src="{e.src}" data-dst="{e.dst}">'
                   f'<path d="{_path(e.points)}" fill="none" stroke="{colour}" stroke-width="1.3"{dash} '
                   f'marker-end="url(#arrow-{e.kind})"/></g>')
    for e in pic.edges:  # labels above every edge
        if not e.label:
            continue
        lx, ly = _label_at(e.points)
        lines = e.label.split("\n")
        top = ly - len(lines) * 11 - 3  # above the line
        for i, line in enumerate(lines):
            out.append(f'<text class="edge-label" x="{lx:.1f}" y="{top + 9 + i * 11:.1f}" text-anchor="middle" '
                       f'font-size="9.5" fill="{_EDGE[e.kind]}" stroke="#ffffff" stroke-width="3" '
                       f'paint-order="stroke">{esc(line)}</text>')
    for node in pic.nodes.values():
        attrs = f' data-stage="{esc(node.stage)}" id="stage-{esc(node.stage)}"' if node.stage else ""
        out.append(f'<g class="node {node.kind}" data-key="{node.key}"{attrs}>')
        fill, stroke = _FILL[node.kind], _STROKE[node.kind]
        x, y, w, h = node.x, node.y, node.w, node.h
        if node.kind == "switch":
            cx, cy = x + w / 2, y + h / 2
            out.append(f'<polygon class="shape" points="{cx:.1f},{y:.1f} {x + w:.1f},{cy:.1f} {cx:.1f},{y + h:.1f} '
                       f'{x:.1f},{cy:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="1.4"/>')
        else:
            rx = {"stage": 4, "adapter": 10, "vote": h / 2, "io": 8, "default": h / 2}[node.kind]
            out.append(f'<rect class="shape" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
                       f'fill="{fill}" stroke="{stroke}" stroke-width="{1.8 if node.kind == "stage" else 1.2}"/>')
        total = len(node.lines) + (1 if node.kind == "stage" else 0)
        top = y + h / 2 - total * _LINE_H / 2
        for i, line in enumerate(node.lines):
            weight = ' font-weight="bold"' if i == 0 else ' fill="#4a5568"'
            out.append(f'<text x="{x + w / 2:.1f}" y="{top + (i + 0.78) * _LINE_H:.1f}" text-anchor="middle"'
                       f'{weight}>{esc(line)}</text>')
        if node.kind == "stage":
            out.append(f'<text class="live" x="{x + w / 2:.1f}" y="{top + (len(node.lines) + 0.78) * _LINE_H:.1f}" '
                       f'text-anchor="middle" font-size="10" fill="#2d3748"></text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- PNG ----------------------------------------------------------------------------------------
def to_png(pic: Picture, *, dpi: int = 144) -> bytes:
    """The picture as PNG bytes, drawn with matplotlib (the ``viz`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
        from matplotlib.path import Path as MPath
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("--format png needs matplotlib: pip install 'brickwork[viz]' "
                          "(or use --format svg)") from exc
    import io

    scale = 1 / 72  # px (at 72 per inch) → inches
    fig = plt.figure(figsize=(pic.width * scale, pic.height * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, pic.width)
    ax.set_ylim(pic.height, 0)
    ax.axis("off")
    fs = 10.0  # one px of the layout is one point here
    for e in pic.edges:
        verts = [e.points[0]]
        codes = [MPath.MOVETO]
        x0, y0 = e.points[0]
        for x1, y1 in e.points[1:]:
            mx = (x0 + x1) / 2
            verts += [(mx, y0), (mx, y1), (x1, y1)]
            codes += [MPath.CURVE4] * 3
            x0, y0 = x1, y1
        ax.add_patch(PathPatch(MPath(verts, codes), fill=False, edgecolor=_EDGE[e.kind], lw=1.1,
                               linestyle="--" if e.kind == "failure" else "-"))
        (ax_, ay), (bx, by) = e.points[-1], (e.points[-1][0] - 7, e.points[-1][1])
        ax.add_patch(Polygon([(ax_, ay), (bx, by - 3.5), (bx, by + 3.5)], closed=True, color=_EDGE[e.kind]))
        if e.label:
            lx, ly = _label_at(e.points)
            ax.text(lx, ly - 3, e.label, ha="center", va="bottom", fontsize=fs * 0.85, color=_EDGE[e.kind],
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    for node in pic.nodes.values():
        fill, stroke = _FILL[node.kind], _STROKE[node.kind]
        if node.kind == "switch":
            cx, cy = node.x + node.w / 2, node.y + node.h / 2
            ax.add_patch(Polygon([(cx, node.y), (node.x + node.w, cy), (cx, node.y + node.h), (node.x, cy)],
                                 closed=True, facecolor=fill, edgecolor=stroke, lw=1.2))
        else:
            ax.add_patch(FancyBboxPatch((node.x, node.y), node.w, node.h, boxstyle="round,pad=0,rounding_size=5",
                                        facecolor=fill, edgecolor=stroke, lw=1.4))
        lines = node.lines
        top = node.y + node.h / 2 - len(lines) * _LINE_H / 2
        for i, line in enumerate(lines):
            ax.text(node.x + node.w / 2, top + (i + 0.5) * _LINE_H, line, ha="center", va="center",
                    fontsize=fs, fontweight="bold" if i == 0 else "normal",
                    color="#1a202c" if i == 0 else "#4a5568")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()
