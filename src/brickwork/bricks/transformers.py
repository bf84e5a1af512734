"""Hugging Face ``transformers`` models from a local directory.

Never a hub download: ``path`` must be a directory made with ``save_pretrained`` (model and
tokenizer), everything is loaded with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``.

Tasks and their ports (the batch axis first):

* ``text-classification``: ``text`` BYTES ``[-1]`` → ``label`` BYTES ``[-1]`` (the model's
  ``id2label`` name) and ``score`` FP32 ``[-1]``; run by a ``transformers`` pipeline.
* ``feature-extraction``: ``text`` BYTES ``[-1]`` → ``embedding`` FP32 ``[-1, hidden_size]``,
  the attention-masked mean of the last hidden state (one vector per text).

transformers and torch are imported only when the brick loads.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelError, RequestError
from ..spec import Signature, Tensors, TensorSpec
from ._base import PATH, BaseBrick, BrickSpec, ConfigKey, lazy_import
from .onnx import config_options, resolve_path

__all__ = ["TASKS", "TransformersBrick", "check_model_dir"]

log = logging.getLogger("brickwork.bricks.transformers")

TASKS = ("text-classification", "feature-extraction")


def _hidden_size(path: Path) -> int:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{str(path)!r} has no readable config.json ({exc}); save the model "
                          "there with save_pretrained()") from exc
    for key in ("hidden_size", "dim", "d_model", "n_embd"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return -1


_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
            "pytorch_model.bin.index.json")
_TOKENIZER = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",),
              ("sentencepiece.bpe.model",), ("tokenizer.model",))


def check_model_dir(path: Path, task: str, name: str) -> None:
    """Refuse, before anything loads, a folder that lacks what ``task`` needs: config.json,
    weights, tokenizer files, and for text-classification a classification head (a base
    model would get a randomly initialised one and answer nonsense)."""
    missing = []
    config: dict[str, Any] = {}
    try:
        config = json.loads((path / "config.json").read_text())
    except OSError:
        missing.append("config.json (the model's configuration)")
    except ValueError as exc:
        missing.append(f"a readable config.json ({exc})")
    if not any((path / f).is_file() for f in _WEIGHTS):
        missing.append(f"the weights ({' or '.join(_WEIGHTS[:2])}, or a sharded index)")
    if not any(all((path / f).is_file() for f in files) for files in _TOKENIZER):
        missing.append("the tokenizer files (tokenizer.json, or vocab.txt, or vocab.json + "
                       "merges.txt, or a sentencepiece .model)")
    if missing:
        raise ConfigError(
            f"transformers brick {name!r}: {str(path)!r} is missing " + "; ".join(missing)
            + ". Save the model and its tokenizer there: model.save_pretrained(dir) and "
            "tokenizer.save_pretrained(dir)")
    architectures = config.get("architectures") or []
    if task == "text-classification" and architectures and not any(
            str(a).endswith(("ForSequenceClassification", "ForTextClassification")) for a in architectures):
        raise ConfigError(
            f"transformers brick {name!r}: the model in {str(path)!r} is {architectures} "
            "(config.json 'architectures'), not a sequence classifier; text-classification "
            "would run it with a randomly initialised classification head. Use a fine-tuned "
            "classifier, or task: feature-extraction")


class TransformersBrick(BaseBrick):
    """A local Hugging Face model for one task.

    path: a directory holding the model and its tokenizer (``save_pretrained``).
    task: one of ``TASKS``.
    device: "cpu" or "cuda[:N]". Default "cpu".
    max_length: longest input in tokens (longer texts are truncated); None = the tokenizer's.
    """

    kind = "transformers"
    config_keys = (
        ConfigKey("transformers", PATH, "a local model directory made with ``save_pretrained`` "
                  "(model and tokenizer; never a hub download)", required=True),
        ConfigKey("task", {"enum": list(TASKS)}, "what the model does", required=True),
        ConfigKey("max_length", {"type": "integer", "minimum": 1},
                  "longest input in tokens (longer texts are truncated); default: the tokenizer's"),
    )

    def __init__(self, path: str | Path, *, task: str, name: str | None = None,
                 device: str = "cpu", max_length: int | None = None) -> None:
        if task not in TASKS:
            raise ConfigError(f"transformers task must be one of {list(TASKS)}, got {task!r}")
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise ConfigError(
                f"transformers brick needs a local model directory, {str(path)!r} is not one "
                "(hub names are not downloaded: save the model with save_pretrained() first)"
            )
        if not (device == "cpu" or device.startswith("cuda")):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ConfigError(f"max_length must be an int >= 1 or None, got {max_length!r}")
        check_model_dir(self.path, task, name or self.path.name)
        text = TensorSpec("text", "BYTES", (-1,))
        if task == "text-classification":
            outputs = [TensorSpec("label", "BYTES", (-1,)), TensorSpec("score", "FP32", (-1,))]
        else:
            outputs = [TensorSpec("embedding", "FP32", (-1, _hidden_size(self.path)))]
        super().__init__(name or self.path.name, Signature([text], outputs))
        self.task = task
        self.device = device
        self.max_length = max_length
        self._pipe: Any = None
        self._model: Any = None
        self._tokenizer: Any = None

    # -- loading ---------------------------------------------------------------------
    def _load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: nothing below may download
        transformers = lazy_import("transformers", "hf")
        torch = lazy_import("torch", "hf")
        self._torch = torch
        local = {"local_files_only": True}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.path), **local)
            if self.task == "text-classification":
                model = transformers.AutoModelForSequenceClassification.from_pretrained(
                    str(self.path), **local)
            else:
                model = transformers.AutoModel.from_pretrained(str(self.path), **local)
        except Exception as exc:
            raise ConfigError(f"cannot load a {self.task} model from {str(self.path)!r} for "
                              f"brick {self.name!r}: {exc}") from exc
        model = model.to(self.device).eval()
        self._model, self._tokenizer = model, tokenizer
        if self.task == "text-classification":
            self._pipe = transformers.pipeline(self.task, model=model, tokenizer=tokenizer,
                                               device=torch.device(self.device))
        log.info("brick %r: %s model %s on %s", self.name, self.task, type(model).__name__,
                 self.device)

    def close(self) -> None:
        self._pipe = self._model = self._tokenizer = None
        super().close()

    # -- calling ---------------------------------------------------------------------
    def _call(self, inputs: Tensors) -> Tensors:
        if "text" not in inputs:
            raise InvalidInput(f"brick {self.name!r} needs input 'text'; got {sorted(inputs)}")
        array = self.signature.input("text").check(inputs["text"],
                                                   where=f"brick {self.name!r} input")
        texts = []
        for i, item in enumerate(array.tolist()):
            if isinstance(item, bytes):
                try:
                    item = item.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInput(f"brick {self.name!r} input 'text' item {i} is not "
                                       "UTF-8") from exc
            if not isinstance(item, str):
                raise InvalidInput(f"brick {self.name!r} input 'text' item {i} is "
                                   f"{type(item).__name__}, not text")
            texts.append(item)
        try:
            if self.task == "text-classification":
                return self._classify(texts)
            return self._embed(texts)
        except RequestError:
            raise
        except Exception as exc:
            raise ModelError(f"brick {self.name!r} ({self.task}) raised "
                             f"{type(exc).__name__}: {exc}") from exc

    def _tokenizer_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"truncation": True}
        if self.max_length is not None:
            kwargs["max_length"] = self.max_length
        return kwargs

    def _classify(self, texts: list[str]) -> Tensors:
        if not texts:
            return {"label": np.empty(0, dtype=object), "score": np.empty(0, dtype=np.float32)}
        results = self._pipe(texts, batch_size=len(texts), **self._tokenizer_kwargs())
        labels = np.empty(len(texts), dtype=object)
        labels[:] = [r["label"] for r in results]
        scores = np.asarray([r["score"] for r in results], dtype=np.float32)
        return {"label": labels, "score": scores}

    def _embed(self, texts: list[str]) -> Tensors:
        width = self.signature.output("embedding").shape[1]
        if not texts:
            return {"embedding": np.empty((0, max(width, 0)), dtype=np.float32)}
        torch = self._torch
        enc = self._tokenizer(texts, padding=True, return_tensors="pt",
                              **self._tokenizer_kwargs()).to(self.device)
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return {"embedding": pooled.float().cpu().numpy()}

    # -- recipe ----------------------------------------------------------------------
    def spec(self) -> BrickSpec:
        config: dict[str, Any] = {"transformers": str(self.path), "task": self.task,
                                  "device": self.device}
        if self.max_length is not None:
            config["max_length"] = self.max_length
        return BrickSpec(self.kind, self.name, config)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> TransformersBrick:
        opts = config_options(config, "transformers", (*cls.config_keys, "device"))
        if "task" not in opts:
            raise ConfigError(f"transformers brick {name!r} needs task: one of {list(TASKS)}")
        return cls(resolve_path(config.get("transformers"), base_dir, "transformers"),
                   name=name, **opts)
