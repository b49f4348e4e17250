"""A generator written for deployment: normalizations folded, traced by torch.export, saved as .pt2 or ONNX.

Folding. The network is copied and put in eval mode; every parametrization (spectral norm, SAN/SN's W/(g·σ)) is
replaced by the weight it yields now, i.e. with its stored u, v or σ, which is what eval mode computes anyway; batch
norms keep their (standing) running statistics, which eval mode uses. The exported graph then has plain weights.

Metadata (what the inputs are, their sizes and value ranges, the run it came from) is one JSON document:
- pt2: the archive's extra file `gancli.json`, read back with
  `torch.export.load(path, extra_files={"gancli.json": ""})` (or any zip reader);
- onnx: the model's metadata_props entry `gancli` (onnx.load(path).metadata_props, or
  onnxruntime's `session.get_modelmeta().custom_metadata_map["gancli"]`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gancli.errors import ConfigError, MissingExtraError

FORMATS = ("pt2", "onnx")
ONNX_OPSET = 18
ONNX_MODULES = ("onnx", "onnxscript")  # what torch.onnx.export(dynamo=True) needs: the onnx extra
METADATA_NAME = "gancli.json"  # the pt2 extra file
ONNX_METADATA_KEY = "gancli"


@dataclass
class ExportInputs:
    """What a recipe's generator takes once exported: a module whose forward takes `example` positionally."""

    module: nn.Module
    example: tuple[Tensor, ...]
    names: list[str]
    descriptions: dict[str, str]  # per input: what it is and its value range
    output: str  # what the output is and its value range
    dynamic: dict[str, dict[int, Any]] = field(default_factory=dict)  # per input: dim → torch.export.Dim (--dynamic)
    metadata: dict[str, Any] = field(default_factory=dict)  # recipe facts: z size, classes, attributes, scale, ...


def batch_dim() -> Any:
    """The symbolic batch size of --dynamic exports."""
    return torch.export.Dim("batch", min=1, max=65536)


def spatial_dims(multiple: int = 1, minimum: int = 2) -> tuple[Any, Any]:
    """Symbolic height and width of --dynamic exports, multiples of `multiple` (sizes 0 and 1 excluded, which
    torch.export would specialize)."""
    Dim = torch.export.Dim
    if multiple == 1:
        return Dim("height", min=minimum, max=16384), Dim("width", min=minimum, max=16384)
    return (multiple * Dim("height_blocks", min=1, max=16384 // multiple),
            multiple * Dim("width_blocks", min=1, max=16384 // multiple))


def refuse_size(size: tuple[int, int] | None, why: str) -> None:
    """--size is for generators that take images or maps; others say why it does not apply."""
    if size is not None:
        raise ConfigError(f"--size does not apply: {why}.")


def latent(n: int, dim: int) -> Tensor:
    """A fixed example z (n, dim) ~ N(0, I)."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(0))


def check_format(fmt: str) -> None:
    """A one-sentence error for an unknown format, or a format whose extra is not installed."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    if fmt == "onnx":
        missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingExtraError(f"--format onnx needs the onnx extra ({', '.join(missing)} not installed): "
                                    f'pip install "gancli[onnx]".')


def fold_normalizations(G: nn.Module) -> nn.Module:
    """A copy of G in eval mode whose parametrized weights are plain tensors holding what eval mode computes.

    Not torch's remove_parametrizations: it deletes the tensor's property from the module's class, which a deep
    copy shares with the original, and would break the run's own generator.
    """
    G = copy.deepcopy(G).eval()
    for module in [m for m in G.modules() if parametrize.is_parametrized(m)]:
        with torch.no_grad():
            values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]  # the plain class that parametrize subclassed
        for name, value in values.items():
            module.register_parameter(name, nn.Parameter(value))
    for p in G.parameters():
        p.requires_grad_(False)
    return G


class _Positional(nn.Module):
    """module(*inputs): one signature for every recipe's module, so that dynamic dims are given by position."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.module(*inputs)


def export_program(inputs: ExportInputs, dynamic: bool = False) -> torch.export.ExportedProgram:
    """torch.export of the inputs' module on its example inputs (symbolic dims where declared, with --dynamic)."""
    shapes = (tuple(inputs.dynamic.get(name, {}) for name in inputs.names),) if dynamic else None
    with torch.no_grad():
        return torch.export.export(_Positional(inputs.module), inputs.example, dynamic_shapes=shapes, strict=False)


def describe_inputs(inputs: ExportInputs, dynamic: bool) -> list[dict[str, Any]]:
    """Name, shape (a dim's name where it is symbolic), dtype and meaning of each input of the exported program."""
    rows = []
    for name, example in zip(inputs.names, inputs.example):
        symbolic = inputs.dynamic.get(name, {}) if dynamic else {}
        shape = [str(symbolic[i].__name__) if i in symbolic else size for i, size in enumerate(example.shape)]
        rows.append({"name": name, "shape": shape, "dtype": str(example.dtype).removeprefix("torch."),
                     "description": inputs.descriptions.get(name, "")})
    return rows


def save_pt2(program: torch.export.ExportedProgram, out: Path, metadata: dict[str, Any]) -> None:
    torch.export.save(program, out, extra_files={METADATA_NAME: json.dumps(metadata, indent=2)})


def save_onnx(program: torch.export.ExportedProgram, out: Path, inputs: ExportInputs, metadata: dict[str, Any]) -> None:
    """ONNX (opset ONNX_OPSET, one file, weights inside) of the exported program, the metadata in metadata_props."""
    import contextlib
    import io

    import onnx

    with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports its progress on stdout
        onnx_program = torch.onnx.export(program, (), input_names=inputs.names, output_names=["generated"],
                                         opset_version=ONNX_OPSET, dynamo=True, external_data=False)
    model = onnx_program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(metadata, indent=2)
    onnx.save_model(model, str(out))


def load_exported(path: str | Path, fmt: str | None = None):
    """(a callable taking the inputs as tensors and returning the output tensor, the metadata) of an exported file
    (its format: `fmt`, else .onnx files are ONNX and others pt2)."""
    path = Path(path)
    if (fmt or ("onnx" if path.suffix == ".onnx" else "pt2")) == "onnx":
        import numpy as np
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        metadata = json.loads(session.get_modelmeta().custom_metadata_map[ONNX_METADATA_KEY])

        def run(*tensors: Tensor) -> Tensor:
            feeds = {n: np.ascontiguousarray(t.detach().cpu().numpy()) for n, t in zip(names, tensors)}
            return torch.from_numpy(session.run(None, feeds)[0])

        return run, metadata
    extra = {METADATA_NAME: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra[METADATA_NAME])


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None
