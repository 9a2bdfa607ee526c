"""Golden models: the attention pattern, the number formats and the NumPy reference models.

Everything else in swatkit (RTL, regression, estimates) takes its window rule from
:class:`AttentionSpec` and its fixed-point rule from :class:`NumberFormat`.
"""

from .models import (
    ErrorReport,
    FixedPointResult,
    attention_reference,
    error_report,
    fixed_point_attention,
    sequence_runs,
    window_attention,
)
from .numerics import NumberFormat, SoftmaxConstant, Widths, dequantize, quantize
from .spec import AttentionSpec, BandKeys, BlockSlots, random_block_table

__all__ = [
    "AttentionSpec",
    "BandKeys",
    "BlockSlots",
    "ErrorReport",
    "FixedPointResult",
    "NumberFormat",
    "SoftmaxConstant",
    "Widths",
    "attention_reference",
    "dequantize",
    "error_report",
    "fixed_point_attention",
    "quantize",
    "random_block_table",
    "sequence_runs",
    "window_attention",
]
