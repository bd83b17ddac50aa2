"""nmlab hardware model: N:M sparse accelerators and GPUs (numpy only, never torch)."""

from hwmodel.design import Design, load_design
from hwmodel.errors import NmlabError
from hwmodel.result import Figures, LayerResult, SimResult
from hwmodel.simulate import simulate
from hwmodel.sparsity import Pattern, compress, decompress, is_transposable, nm_mask, parse_pattern, verify
from hwmodel.workload import Layer, Workload, load_workload, save_workload

__all__ = [
    "Design",
    "load_design",
    "simulate",
    "Figures",
    "LayerResult",
    "SimResult",
    "NmlabError",
    "Pattern",
    "Layer",
    "Workload",
    "compress",
    "decompress",
    "is_transposable",
    "load_workload",
    "nm_mask",
    "parse_pattern",
    "save_workload",
    "verify",
]
