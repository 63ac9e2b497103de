"""Optional ONNX Runtime backend: the loaded PyTorch model exported once at start, fp32 or int8.

``EMOTION_RUNTIME=onnx`` exports with ``torch.onnx.export`` (dynamic batch and sequence axes)
into a private temporary directory; ``onnx-int8`` then applies ONNX Runtime's dynamic
quantization (int8 weights of the MatMul/Gemm nodes, activations quantized on the fly). The
session gets the same thread budget as torch would. bench/onnx_parity.py measures agreement
with the PyTorch model and speed; PyTorch stays the default until both hold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


def torch_forward(model: Any, output: str) -> Forward:
    """``model(input_ids, attention_mask).<output>`` as float32 numpy, under inference mode."""
    import torch

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            return np.asarray(getattr(out, output).float().numpy())

    return forward


def export_onnx(model: Any, output: str, path: Path) -> Path:
    import torch

    class _Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return getattr(self.inner(input_ids=input_ids, attention_mask=attention_mask), output)

    sample = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    with torch.no_grad():
        torch.onnx.export(
            _Wrapped().eval(),
            sample,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          output: {0: "batch"}},
            opset_version=17,
            do_constant_folding=True,
        )
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


def onnx_forward(model: Any, output: str, int8: bool, threads: int | None) -> Forward:
    """Export ``model`` (and quantize it when ``int8``), open an ONNX Runtime session on it."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="emotion-onnx-") as tmp:
        path = export_onnx(model, output, Path(tmp) / "model.onnx")
        if int8:
            path = quantize_int8(path, Path(tmp) / "model.int8.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        [result] = session.run([output], {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(result, dtype=np.float32)

    return forward
