"""placeholder"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WebExport", "export_web"]


@dataclass(frozen=True, slots=True)
class WebExport:
    pass


def export_web() -> None:
    raise NotImplementedError
