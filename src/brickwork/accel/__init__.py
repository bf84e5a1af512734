"""accel: make a brick faster where that stays accurate, and take it to the browser.

``optimize`` exports torch/sklearn bricks to ONNX (parity-checked), builds variants (graph
optimisation, INT8, FP16, GPU providers), measures them all on the user's data in one run and
keeps the fastest within an accuracy budget. ``export_web`` writes a brick's ONNX model and a
static page that runs it in the browser with onnxruntime-web. Frameworks are imported only
when used.
"""

from ._data import Dataset, load_dataset
from ._host import Host, host
from ._optimize import BrickReport, OptimizeConfig, VariantResult, optimize
from ._report import report_chart, report_table
from ._targets import TARGETS, export_brick
from ._web import WebExport, export_web

__all__ = [
    "TARGETS", "BrickReport", "Dataset", "Host", "OptimizeConfig", "VariantResult", "WebExport", "export_brick",
    "export_web", "host", "load_dataset", "optimize", "report_chart", "report_table",
]
