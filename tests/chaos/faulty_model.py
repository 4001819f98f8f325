"""Real faulty models for the slow-model and failing-model cases: the fraud model's own ONNX
graph with a fault branch that fires only for batches holding a trigger request.

The trigger is `card_txn_count_1h >= TRIGGER_COUNT` (a valid value, far above what the
generator makes: at most about 12): the model input's column 9 as is. Batches without one
are scored exactly as the served model scores them (the branch adds 0).
- `slow`: a Loop of `SLOW_TRIPS` small matmuls, many seconds even on a fast core: far beyond
  any model timeout a test sets, so the call is always ended by the timeout.
- `failing`: a Gather at index 1 of a one-element table: ONNX Runtime fails the run with
  INVALID_ARGUMENT ("indices element out of data bounds").
No injection hook in the pipeline: the worker loads these as any model directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.config import REPO_ROOT

Fault = Literal["slow", "failing"]

SOURCE = REPO_ROOT / "models" / "fraud" / "1.0.0"
TRIGGER_COUNT = 5000  # card_txn_count_1h; valid up to 10,000 (pipeline/streams/fraud/features.py)
TRIGGER_COLUMN = 9  # txn_count_1h in FEATURE_NAMES
SLOW_TRIPS = 50_000_000
VERSIONS = {"slow": "1.0.0-slow.1", "failing": "1.0.0-failing.1"}


def trigger(record: dict[str, object]) -> dict[str, object]:
    """`record` as a request that makes the faulty model slow or fail for its batch."""
    return {**record, "card_txn_count_1h": TRIGGER_COUNT + 1}


def onnx_bytes(fault: Fault) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(SOURCE / "model.onnx"))
    graph = model.graph
    for node in graph.node:  # the served probabilities become the fault branch's input
        node.output[:] = [
            "served_probabilities" if name == "probabilities" else name for name in node.output
        ]
    nodes = [
        helper.make_node("Gather", ["features", "fault_column"], ["fault_values"], axis=1),
        helper.make_node("ReduceMax", ["fault_values"], ["fault_max"], keepdims=0),
        helper.make_node("Greater", ["fault_max", "fault_threshold"], ["fault_on"]),
        helper.make_node("Cast", ["fault_on"], ["fault_on_int"], to=TensorProto.INT64),
    ]
    constants = {
        "fault_column": np.array(TRIGGER_COLUMN, np.int64),
        "fault_threshold": np.array(TRIGGER_COUNT - 0.5, np.float32),
        "fault_zero": np.array(0.0, np.float32),
    }
    if fault == "slow":
        spin = helper.make_graph(
            [
                helper.make_node("MatMul", ["state_in", "fault_weights"], ["state_product"]),
                helper.make_node("Tanh", ["state_product"], ["state_out"]),
                helper.make_node("Identity", ["going_in"], ["going_out"]),
            ],
            "spin",
            [
                helper.make_tensor_value_info("trip", TensorProto.INT64, []),
                helper.make_tensor_value_info("going_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [64, 64]),
            ],
            [
                helper.make_tensor_value_info("going_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [64, 64]),
            ],
        )
        nodes += [
            helper.make_node("Mul", ["fault_on_int", "fault_trips"], ["fault_trip_count"]),
            helper.make_node(
                "Loop", ["fault_trip_count", "fault_true", "fault_state"], ["fault_end"], body=spin
            ),
            helper.make_node("ReduceSum", ["fault_end"], ["fault_sum"], keepdims=0),
        ]
        rng = np.random.default_rng(16)
        constants |= {
            "fault_trips": np.array(SLOW_TRIPS, np.int64),
            "fault_true": np.array(True),
            "fault_state": rng.normal(0, 0.1, (64, 64)).astype(np.float32),
            "fault_weights": rng.normal(0, 0.1, (64, 64)).astype(np.float32),
        }
    else:
        nodes += [
            helper.make_node("Reshape", ["fault_on_int", "fault_one"], ["fault_index"]),
            helper.make_node("Gather", ["fault_table", "fault_index"], ["fault_picked"]),
            helper.make_node("ReduceSum", ["fault_picked"], ["fault_sum"], keepdims=0),
        ]
        constants |= {
            "fault_one": np.array([1], np.int64),
            "fault_table": np.array([0.0], np.float32),
        }
    nodes += [
        helper.make_node("Mul", ["fault_sum", "fault_zero"], ["fault_nothing"]),
        helper.make_node("Add", ["served_probabilities", "fault_nothing"], ["probabilities"]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build(models_dir: Path, fault: Fault) -> Path:
    """`models_dir/fraud/<version>/`: the faulty model with the served model's manifest and
    reference rows (so the worker loads, verifies and warms it up like any other)."""
    directory = models_dir / "fraud" / VERSIONS[fault]
    directory.mkdir(parents=True)
    raw = onnx_bytes(fault)
    (directory / "model.onnx").write_bytes(raw)
    shutil.copyfile(SOURCE / "reference.npy", directory / "reference.npy")
    manifest = json.loads((SOURCE / "manifest.json").read_text())
    manifest |= {"version": VERSIONS[fault], "sha256": hashlib.sha256(raw).hexdigest()}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory
