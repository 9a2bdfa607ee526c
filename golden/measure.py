"""Measurements of the golden models: their speed, and the error table of docs/numerics.md.

``python -m swatkit.golden.measure [speed]``
    Times :func:`attention_reference` on ``spec.mask()`` (dense, O(N²)) against
    :func:`window_attention` (banded, O(N·W·d)) on the same float64 inputs, prints the speed-up
    and the largest difference between them; then times :func:`fixed_point_attention` at a longer
    sequence. Each model runs in a fresh process, so its peak resident set size
    (``resource.getrusage``) is its own (inputs included), with one BLAS thread unless
    ``--threads`` says otherwise.

``python -m swatkit.golden.measure errors``
    For a list of number formats, draws Gaussian Q, K, V, quantises them with :func:`quantize` and
    prints :func:`error_report`: the bit-exact model against float64 attention on the same
    (dequantised) inputs, in output LSBs and in real units, beside the proven bound.

``python -m swatkit.golden.measure sinks``
    The same error table for grouped heads with attention sinks: a GPT-OSS-style sliding layer
    head group (causal window, ``--heads`` query heads on ``--kv-heads`` K/V heads, one learned
    sink logit per head drawn uniformly from ``--sink-range``) and a StreamingLLM-style window
    with ``--sink-tokens`` sink keys.

The inputs are seeded (``--seed``), so every figure can be reproduced.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time

import numpy as np

from .models import attention_reference, error_report, fixed_point_attention, window_attention
from .numerics import NumberFormat, quantize
from .spec import AttentionSpec

__all__ = ["ERROR_FORMATS", "main", "measure_errors", "measure_sinks", "measure_speed"]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10  # bytes vs KiB


def _float_inputs(spec: AttentionSpec, seed: int):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((spec.seq_len, spec.head_dim)) for _ in range(3))


def _run(model: str, spec: AttentionSpec, seed: int, repeat: int):
    """Run one model (in a child process) and return (best seconds, peak RSS MiB, output)."""
    fmt = NumberFormat()
    q, k, v = _float_inputs(spec, seed)
    if model == "fixed":
        q, k, v = (quantize(x, s, fmt.data_bits)
                   for x, s in ((q, fmt.scale_q), (k, fmt.scale_k), (v, fmt.scale_v)))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        if model == "dense":
            out = attention_reference(q, k, v, spec.mask())   # the mask is part of the cost
        elif model == "window":
            out = window_attention(q, k, v, spec)
        else:
            out = fixed_point_attention(q, k, v, spec, fmt).out
        best = min(best, time.perf_counter() - start)
    return best, _peak_rss_mib(), (None if model == "fixed" else out)


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _in_child(*args, threads: int | None = None):
    # The child is a fresh interpreter: BLAS reads its thread count from the environment when
    # NumPy is imported there. (On a shared machine, BLAS threads that wait on busy cores can
    # make a matrix product 10x slower; --threads 1 avoids that.)
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    if threads is not None:
        os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    try:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            return pool.submit(_run, *args).result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _table(header, rows) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measure_speed(seq_len: int = 16384, head_dim: int = 64, attention_window: int = 512,
                  fixed_seq_len: int = 65536, seed: int = 0, repeat: int = 1,
                  dense: bool = True, threads: int | None = 1) -> str:
    """Run the speed benchmark and return its table (see the module docstring)."""
    spec = AttentionSpec.longformer(seq_len, head_dim, attention_window)
    rows, notes = [], []
    t_win, rss_win, out_win = _in_child("window", spec, seed, repeat, threads=threads)
    if dense:
        t_ref, rss_ref, out_ref = _in_child("dense", spec, seed, repeat, threads=threads)
        rows.append(["attention_reference(q, k, v, spec.mask())", seq_len, f"{t_ref:.3f}",
                     f"{rss_ref:.0f}"])
        notes.append(f"speed-up dense / window: {t_ref / t_win:.1f}x; "
                     f"max |dense − window| = {np.abs(out_ref - out_win).max():.1e}")
    rows.append(["window_attention", seq_len, f"{t_win:.3f}", f"{rss_win:.0f}"])
    fixed = AttentionSpec.longformer(fixed_seq_len, head_dim, attention_window)
    t_fix, rss_fix, _ = _in_child("fixed", fixed, seed, repeat, threads=threads)
    rows.append(["fixed_point_attention (default format)", fixed_seq_len, f"{t_fix:.3f}",
                 f"{rss_fix:.0f}"])
    title = (f"head_dim {head_dim}, Longformer attention_window {attention_window} "
             f"(W = {spec.window}), seed {seed}, best of {repeat}, "
             f"BLAS threads {'default' if threads is None else threads}")
    table = _table(["model", "N", "time [s]", "peak RSS [MiB]"], rows)
    return "\n".join([title, table, *notes])


# name → format; Q, K, V are N(0, 1) reals, so every format keeps the real range about ±4
ERROR_FORMATS = {
    "default (8-bit)": NumberFormat(),
    "data_bits=12": NumberFormat(data_bits=12, out_bits=12,
                                 scale_q=2 ** -9, scale_k=2 ** -9, scale_v=2 ** -9),
    "prob_bits=12": NumberFormat(prob_bits=12),
    "exp_frac_bits=4": NumberFormat(exp_frac_bits=4),
    "exp_frac_bits=8": NumberFormat(exp_frac_bits=8),
    "out_frac_bits=4": NumberFormat(out_bits=12, out_frac_bits=4),
}


def measure_errors(seq_len: int = 16384, head_dim: int = 64, attention_window: int = 512,
                   seed: int = 0, sigma: float = 1.0) -> str:
    """Run the error measurement over :data:`ERROR_FORMATS` and return its table."""
    spec = AttentionSpec.longformer(seq_len, head_dim, attention_window)
    rng = np.random.default_rng(seed)
    real = [sigma * rng.standard_normal((seq_len, head_dim)) for _ in range(3)]
    rows = []
    for name, fmt in ERROR_FORMATS.items():
        q, k, v = (quantize(x, s, fmt.data_bits)
                   for x, s in zip(real, (fmt.scale_q, fmt.scale_k, fmt.scale_v), strict=True))
        r = error_report(q, k, v, spec, fmt)
        rows.append([name, f"{fmt.scale_o:.6g}", f"{r.max_lsb:.3f}", f"{r.mean_lsb:.4f}",
                     f"{r.max_abs:.3e}", f"{r.mean_abs:.3e}", f"{r.bound_lsb:.2f}"])
    title = (f"N {seq_len}, head_dim {head_dim}, Longformer attention_window {attention_window}, "
             f"Q, K, V ~ N(0, {sigma:g}²) quantised, seed {seed}")
    header = ["format", "LSB (scale_o)", "max [LSB]", "mean [LSB]", "max [real]", "mean [real]",
              "bound [LSB]"]
    return title + "\n" + _table(header, rows)


def measure_sinks(seq_len: int = 4096, head_dim: int = 64, sliding_window: int = 128,
                  heads: int = 8, kv_heads: int = 1, sink_tokens: int = 4, seed: int = 0,
                  sigma: float = 1.0, sink_range: tuple[float, float] = (-2.0, 4.0)) -> str:
    """The error table of :data:`ERROR_FORMATS` for grouped heads with learned sink logits
    (GPT-OSS) and with sink tokens (StreamingLLM); see the module docstring."""
    rng = np.random.default_rng(seed)
    q_real = sigma * rng.standard_normal((heads, seq_len, head_dim))
    k_real, v_real = sigma * rng.standard_normal((2, kv_heads, seq_len, head_dim))
    logits = rng.uniform(*sink_range, heads)
    window = AttentionSpec.causal(seq_len, head_dim, sliding_window)
    cases = [("learned sinks", window, logits),
             (f"{sink_tokens} sink tokens", window.replace(sink_tokens=sink_tokens), None)]
    rows = []
    for name, fmt in ERROR_FORMATS.items():
        q, k, v = (quantize(x, s, fmt.data_bits) for x, s in
                   zip((q_real, k_real, v_real), (fmt.scale_q, fmt.scale_k, fmt.scale_v),
                       strict=True))
        for case, spec, z in cases:
            r = error_report(q, k, v, spec, fmt, sink_logits=z)
            rows.append([name, case, f"{fmt.scale_o:.6g}", f"{r.max_lsb:.3f}",
                         f"{r.mean_lsb:.4f}", f"{r.max_abs:.3e}", f"{r.mean_abs:.3e}",
                         f"{r.bound_lsb:.2f}"])
    title = (f"N {seq_len}, head_dim {head_dim}, causal sliding_window {sliding_window}, "
             f"{heads} query heads on {kv_heads} K/V heads, Q, K, V ~ N(0, {sigma:g}²) "
             f"quantised, sink logits ~ U({sink_range[0]:g}, {sink_range[1]:g}), seed {seed}")
    header = ["format", "case", "LSB (scale_o)", "max [LSB]", "mean [LSB]", "max [real]",
              "mean [real]", "bound [LSB]"]
    return title + "\n" + _table(header, rows)


# the host-side recipes of golden/outliers.py: name -> fold_channels arguments (None: none)
OUTLIER_RECIPES = {
    "per-tensor scales": None,
    "Q/K balance": {"alpha": 0.5},
    "rotation": {"alpha": 0.0, "rotate": True},
    "rotation + Q/K balance": {"alpha": 0.5, "rotate": True},
}


def _per_tensor_run(q, k, v, spec: AttentionSpec, data_bits: int):
    """Quantise each tensor with the scale of its own maximum, run the bit-exact model and
    return its output as reals, with the format used."""
    top = 2 ** (data_bits - 1) - 1
    scales = [float(np.abs(x).max()) / top or 1.0 for x in (q, k, v)]
    fmt = NumberFormat(data_bits=data_bits, scale_q=scales[0], scale_k=scales[1],
                       scale_v=scales[2])
    ints = [quantize(x, s_, data_bits) for x, s_ in zip((q, k, v), scales, strict=True)]
    return fixed_point_attention(*ints, spec, fmt).out * fmt.scale_o, fmt


def measure_outliers(seq_len: int = 4096, head_dim: int = 64, sliding_window: int = 128,
                     heads: int = 8, kv_heads: int = 1, channels: int = 2, gain: float = 50.0,
                     data_bits: int = 8, seed: int = 0) -> str:
    """The bit-exact model's error against float64 attention on the real inputs when
    ``channels`` channels of K (or of Q and K) are ``gain`` times larger, per recipe of
    :data:`OUTLIER_RECIPES` (golden/outliers.py); each tensor quantised with the scale of its
    own maximum. Errors in real units and in output LSBs of the run without outliers."""
    from .outliers import fold_channels

    rng = np.random.default_rng(seed)
    q_real = rng.standard_normal((heads, seq_len, head_dim))
    k_real, v_real = rng.standard_normal((2, kv_heads, seq_len, head_dim))
    picked = rng.choice(head_dim, size=channels, replace=False)
    spec = AttentionSpec.causal(seq_len, head_dim, sliding_window)
    base_out, base_fmt = _per_tensor_run(q_real, k_real, v_real, spec, data_bits)
    lsb = base_fmt.scale_o
    err = np.abs(base_out - window_attention(q_real, k_real, v_real, spec))
    rows = [["none", "per-tensor scales", f"{err.max() / lsb:.2f}", f"{err.mean() / lsb:.4f}",
             f"{err.max():.3e}", f"{err.mean():.3e}"]]
    for case, on_q in ((f"K ×{gain:g}", False), (f"Q and K ×{gain:g}", True)):
        q, k = q_real.copy(), k_real.copy()
        k[:, :, picked] *= gain
        if on_q:
            q[:, :, picked] *= gain
        ref = window_attention(q, k, v_real, spec)
        for name, recipe in OUTLIER_RECIPES.items():
            if recipe is None:
                out, _ = _per_tensor_run(q, k, v_real, spec, data_bits)
            else:
                f = fold_channels(q, k, v_real, **recipe)
                out = f.output(_per_tensor_run(f.q, f.k, f.v, spec, data_bits)[0])
            err = np.abs(out - ref)
            rows.append([case, name, f"{err.max() / lsb:.2f}", f"{err.mean() / lsb:.4f}",
                         f"{err.max():.3e}", f"{err.mean():.3e}"])
    title = (f"N {seq_len}, head_dim {head_dim}, causal sliding_window {sliding_window}, "
             f"{heads} query heads on {kv_heads} K/V heads, Q, K, V ~ N(0, 1), {channels} "
             f"outlier channel{'s' if channels != 1 else ''} ({', '.join(map(str, picked))}), "
             f"{data_bits}-bit per-tensor scales (each tensor's maximum), seed {seed}; LSB: "
             f"the output LSB of the run without outliers ({lsb:.4g})")
    header = ["outliers", "recipe", "max [LSB]", "mean [LSB]", "max [real]", "mean [real]"]
    return title + "\n" + _table(header, rows)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def _group_options(parser) -> None:
    """The GPT-OSS-style head group of the ``sinks`` and ``outliers`` measurements."""
    parser.add_argument("--seq-len", type=_positive, default=4096)
    parser.add_argument("--head-dim", type=_positive, default=64)
    parser.add_argument("--sliding-window", type=_positive, default=128)
    parser.add_argument("--heads", type=_positive, default=8)
    parser.add_argument("--kv-heads", type=_positive, default=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swatkit.golden.measure",
        description="Benchmarks of the golden models (default: speed).")
    sub = parser.add_subparsers(dest="command")
    speed = sub.add_parser("speed",
                           help="dense vs banded float model; fixed-point model at large N")
    speed.add_argument("--seq-len", type=int, default=16384,
                       help="N of the dense vs window comparison (default 16384)")
    speed.add_argument("--fixed-seq-len", type=int, default=65536,
                       help="N of the fixed-point run (default 65536)")
    speed.add_argument("--head-dim", type=int, default=64)
    speed.add_argument("--attention-window", type=int, default=512)
    speed.add_argument("--repeat", type=_positive, default=1,
                       help="report the best of this many runs (default 1)")
    speed.add_argument("--no-dense", action="store_true",
                       help="skip the O(N²) reference (it needs ~6.5 GB at N = 16384)")
    speed.add_argument("--threads", type=_positive, default=1,
                       help="BLAS threads of each measured process (default 1: reproducible on "
                            "a shared machine)")
    speed.add_argument("--seed", type=int, default=0)
    errors = sub.add_parser("errors", help="measured error of the fixed-point model per format")
    errors.add_argument("--seq-len", type=int, default=16384)
    errors.add_argument("--head-dim", type=int, default=64)
    errors.add_argument("--attention-window", type=int, default=512)
    errors.add_argument("--sigma", type=float, default=1.0, help="std. dev. of Q, K, V reals")
    errors.add_argument("--seed", type=int, default=0)
    sinks = sub.add_parser("sinks", help="measured error with grouped heads and attention sinks")
    _group_options(sinks)
    sinks.add_argument("--sink-tokens", type=int, default=4)
    sinks.add_argument("--sink-range", type=float, nargs=2, default=(-2.0, 4.0),
                       metavar=("LOW", "HIGH"), help="learned sink logits ~ U(LOW, HIGH)")
    sinks.add_argument("--sigma", type=float, default=1.0, help="std. dev. of Q, K, V reals")
    sinks.add_argument("--seed", type=int, default=0)
    out = sub.add_parser("outliers", help="error with outlier channels, per host-side recipe")
    _group_options(out)
    out.add_argument("--channels", type=_positive, default=2, help="outlier channels")
    out.add_argument("--gain", type=float, default=50.0, help="their size (default 50x)")
    out.add_argument("--data-bits", type=_positive, default=8)
    out.add_argument("--seed", type=int, default=0)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["speed", *argv]
    args = parser.parse_args(argv)
    try:
        if args.command == "speed":
            print(measure_speed(args.seq_len, args.head_dim, args.attention_window,
                                args.fixed_seq_len, args.seed, args.repeat,
                                not args.no_dense, args.threads))
        elif args.command == "outliers":
            if args.heads % args.kv_heads:
                raise ValueError(f"--heads ({args.heads}) must be a multiple of --kv-heads "
                                 f"({args.kv_heads})")
            if args.channels > args.head_dim:
                raise ValueError(f"--channels ({args.channels}) must be at most --head-dim "
                                 f"({args.head_dim})")
            print(measure_outliers(args.seq_len, args.head_dim, args.sliding_window, args.heads,
                                   args.kv_heads, args.channels, args.gain, args.data_bits,
                                   args.seed))
        elif args.command == "sinks":
            if args.heads % args.kv_heads:
                raise ValueError(f"--heads ({args.heads}) must be a multiple of --kv-heads "
                                 f"({args.kv_heads})")
            print(measure_sinks(args.seq_len, args.head_dim, args.sliding_window, args.heads,
                                args.kv_heads, args.sink_tokens, args.seed, args.sigma,
                                tuple(args.sink_range)))
        else:
            print(measure_errors(args.seq_len, args.head_dim, args.attention_window, args.seed,
                                 args.sigma))
    except (TypeError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
