"""TransformersBrick: a tiny random-weight BERT and a WordPiece tokenizer built here, loaded
from a local directory only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import BrickSpec, brick_from_spec

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from brickwork.bricks.transformers import TransformersBrick  # noqa: E402

WORDS = "good bad great awful movie film the a is was plot acting".split()
HIDDEN = 16


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-bert")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=HIDDEN, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
        num_labels=2, id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


TEXTS = ["good movie", "the plot was awful", "great acting is great great"]


def _reference_logits(path: Path, texts: list[str]) -> np.ndarray:
    tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(path), local_files_only=True).eval()
    with torch.no_grad():
        return model(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()


def test_text_classification(tiny_bert: Path) -> None:
    brick = TransformersBrick(tiny_bert, task="text-classification", name="sentiment")
    assert str(brick.signature) == "(text: BYTES[?]) -> (label: BYTES[?], score: FP32[?])"
    out = brick({"text": np.array([TEXTS[0], TEXTS[1].encode(), TEXTS[2]], dtype=object)})
    logits = _reference_logits(tiny_bert, TEXTS)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert out["label"].dtype == object
    assert out["label"].tolist() == [["NEG", "POS"][i] for i in probs.argmax(axis=1)]
    assert out["score"].dtype == np.float32
    np.testing.assert_allclose(out["score"], probs.max(axis=1), rtol=1e-4)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_feature_extraction_is_a_masked_mean(tiny_bert: Path) -> None:
    brick = TransformersBrick(tiny_bert, task="feature-extraction")
    assert brick.signature.output("embedding").shape == (-1, HIDDEN)
    batch = brick({"text": np.array(TEXTS, dtype=object)})["embedding"]
    assert batch.shape == (3, HIDDEN) and batch.dtype == np.float32
    # padding in a batch must not change an item's embedding
    alone = brick({"text": np.array([TEXTS[0]], dtype=object)})["embedding"]
    np.testing.assert_allclose(batch[0], alone[0], atol=1e-5)
    assert not np.allclose(batch[0], batch[1])


def test_empty_batch(tiny_bert: Path) -> None:
    brick = TransformersBrick(tiny_bert, task="text-classification")
    out = brick({"text": np.empty(0, dtype=object)})
    assert out["label"].shape == (0,) and out["score"].shape == (0,)


def test_never_a_hub_download(tmp_path: Path) -> None:
    with pytest.raises(bw.ConfigError, match="needs a local model directory.*not downloaded"):
        TransformersBrick("bert-base-uncased", task="text-classification")
    with pytest.raises(bw.ConfigError, match="is missing config.json"):
        TransformersBrick(tmp_path, task="feature-extraction")
    (tmp_path / "config.json").write_text("{}")  # was accepted, then failed at load
    with pytest.raises(bw.ConfigError, match="is missing the weights .*; the tokenizer files"):
        TransformersBrick(tmp_path, task="text-classification")


def test_bad_task_and_bad_text(tiny_bert: Path) -> None:
    with pytest.raises(bw.ConfigError, match="task must be one of"):
        TransformersBrick(tiny_bert, task="summarization")
    brick = TransformersBrick(tiny_bert, task="text-classification")
    with pytest.raises(bw.InvalidInput, match="item 0 is not UTF-8"):
        brick({"text": np.array([b"\xff\xfe"], dtype=object)})
    with pytest.raises(bw.InvalidInput, match="expected datatype BYTES"):
        brick({"text": np.array([1.0])})


def test_spec_and_yaml_config(tiny_bert: Path) -> None:
    brick = TransformersBrick(tiny_bert, task="feature-extraction", name="embed", max_length=8)
    again = brick_from_spec(brick.spec())
    assert again.signature == brick.signature and again.max_length == 8
    spec = BrickSpec("transformers", "embed", {"transformers": tiny_bert.name,
                                               "task": "feature-extraction"},
                     base_dir=str(tiny_bert.parent))
    assert brick_from_spec(spec).path == tiny_bert.resolve()
    with pytest.raises(bw.ConfigError, match="needs task"):
        brick_from_spec(BrickSpec("transformers", "x", {"transformers": str(tiny_bert)}))


def test_truncation_to_max_length(tiny_bert: Path) -> None:
    brick = TransformersBrick(tiny_bert, task="feature-extraction", max_length=4)
    long = " ".join(WORDS * 10)  # far past max_position_embeddings=32 without truncation
    out = brick({"text": np.array([long, long[:40]], dtype=object)})
    assert out["embedding"].shape == (2, HIDDEN)


def test_in_a_pipeline(tiny_bert: Path) -> None:
    def reply(label: str, score: float) -> str:
        return f"{label.lower()}:{score:.2f}"

    graph = bw.transformers(tiny_bert, task="text-classification", name="sentiment") >> bw.function(reply)
    with graph.compile() as pipeline:
        out = pipeline.infer({"text": TEXTS})
    direct = TransformersBrick(tiny_bert, task="text-classification")({"text": np.array(TEXTS, dtype=object)})
    assert out["reply"].tolist() == [f"{lab.lower()}:{s:.2f}" for lab, s in zip(direct["label"], direct["score"])]


def test_the_factory_takes_max_length_as_yaml_does(tiny_bert: Path) -> None:
    """bw.transformers(..., max_length=) was refused although YAML accepted max_length."""
    node = bw.transformers(tiny_bert, task="feature-extraction", max_length=4, name="emb")
    assert node.brick.max_length == 4
    long = " ".join(WORDS * 10)  # too long for the model without truncation
    with node.compile() as pipeline:
        assert pipeline.infer({"text": [long]})["embedding"].shape == (1, HIDDEN)
def copy_without(src: Path, dest: Path, *drop: str) -> Path:
    import shutil

    shutil.copytree(src, dest)
    for name in drop:
        (dest / name).unlink()
    return dest


def test_an_empty_folder_fails_validate_naming_everything_missing(tmp_path):
    from brickwork.cli import main

    (tmp_path / "model").mkdir()
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text("name: p\nbricks:\n  clf: {transformers: model, task: text-classification}\ngraph: clf\n")
    with pytest.raises(bw.ConfigError) as info:
        bw.graph(bw.transformers(tmp_path / "model", task="text-classification"))
    msg = str(info.value)
    assert "is missing config.json" in msg and "the weights" in msg and "the tokenizer files" in msg
    assert main(["validate", str(yaml_path)]) == 1


def test_a_folder_without_tokenizer_files_is_refused(tiny_bert, tmp_path):
    folder = copy_without(tiny_bert, tmp_path / "m", "vocab.txt", "tokenizer.json")
    with pytest.raises(bw.ConfigError, match="is missing the tokenizer files") as info:
        TransformersBrick(folder, task="feature-extraction")
    assert "config.json" not in str(info.value).split("missing", 1)[1].split("Save")[0]


def test_a_base_model_is_refused_for_classification(tiny_bert, tmp_path):
    folder = tmp_path / "base"
    transformers.BertModel(transformers.BertConfig.from_pretrained(tiny_bert)).save_pretrained(folder)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert / f).exists():
            (folder / f).write_bytes((tiny_bert / f).read_bytes())
    with pytest.raises(bw.ConfigError, match="not a sequence classifier"):
        TransformersBrick(folder, task="text-classification")
    assert TransformersBrick(folder, task="feature-extraction").signature.outputs[0].shape == (-1, HIDDEN)
