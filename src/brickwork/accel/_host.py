"""What this machine offers an optimised model: CPU instruction sets and ONNX Runtime's
execution providers. Read when asked, never on import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Host", "host"]

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True, slots=True)
class Host:
    """cpu_flags: the flags line of /proc/cpuinfo (empty where there is none).
    providers: ONNX Runtime's available execution providers."""

    cpu_flags: frozenset[str]
    providers: tuple[str, ...]

    @property
    def vnni(self) -> bool:
        """INT8 dot products without the 16-bit overflow that makes ``reduce_range`` needed."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.cpu_flags)

    @property
    def gpu_providers(self) -> tuple[str, ...]:
        return tuple(p for p in _GPU_PROVIDERS if p in self.providers)

    def describe(self) -> str:
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in self.cpu_flags]
        return f"CPU {'+'.join(isa) or 'baseline'}; ONNX Runtime providers {list(self.providers)}"


def _cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def host() -> Host:
    import onnxruntime as ort

    return Host(_cpu_flags(), tuple(ort.get_available_providers()))
