"""Contexts (docs/rtl.md, "Decode"): a decode core of C > 1 contexts holds C sequences at once
(a layer's K/V heads, or a batch), each with its own K/V ring, sink columns and positions
(``ContextStore``); the command names one (``ctx``). Interleaved prefills, steps and starts
in Amaranth's simulator, each context bit-exact against its own one-run model, and the cycle
model exact on every stall-free run (a context switch costs no cycle)."""

import numpy as np
import pytest
from amaranth import Shape

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.golden.checks import ConfigValueError
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import MAX_KV_BUFFER_BITS, CoreParams, LimitError
from swatkit.rtl.core import SwatCore, command, core_layouts, core_signature
from swatkit.sim.amaranth_core import (
    CoreInput,
    Reject,
    ResetCore,
    check_results,
    run_core_many,
)
from swatkit.sim.cycle_model import swat_actions, swat_cycles


class Sequence:
    """One context's sequence: its inputs, pattern and one-run model, and the rows sent so far."""

    def __init__(self, rng, p: CoreParams, spec: AttentionSpec, ctx: int, logits: bool):
        g, d, n = p.group_heads, spec.head_dim, spec.seq_len
        self.p, self.spec, self.ctx, self.at = p, spec, ctx, 0
        self.q = rng.integers(-128, 128, (g, n, d))
        self.k, self.v = rng.integers(-128, 128, (n, d)), rng.integers(-128, 128, (n, d))
        z = rng.uniform(-2, 2, g) if logits else None
        self.sigma = tuple(NumberFormat().sink_scores(z, d)) if logits else None
        self.want = fixed_point_attention(self.q, self.k[None], self.v[None], spec,
                                          sink_logits=z).out
        self.lengths = []

    def next(self, rows: int) -> tuple:
        """The next ``rows`` rows: a start if none were sent, else a continue; with the rows
        the model expects and the run's (first row, length)."""
        a, b = self.at, self.at + rows
        g = self.p.group_heads
        item = CoreInput(self.q[:, a:b] if g > 1 else self.q[0, a:b], self.k[a:b], self.v[a:b],
                         self.spec.replace(seq_len=b), cont=a > 0, sinks=self.sigma,
                         ctx=self.ctx)
        self.at = b
        want = self.want[:, a:b] if g > 1 else self.want[0, a:b]
        return item, want, (a, b)


def _check_runs(p, got, plan, gap):
    """Each run's action counts equal the model's; its cycles too when nothing stalls."""
    runs = [r for r in got if hasattr(r, "stats")]
    assert len(runs) == len(plan)
    for result, (spec, (a, b)) in zip(runs, plan, strict=True):
        run = spec.replace(seq_len=b)
        actions = swat_actions(p, run, a)
        assert {name: result.stats[name] for name in actions} == actions
        if not gap:
            assert result.stats["cycles"] == swat_cycles(p, b, run=run, first_row=a).cycles


# (contexts, heads, before, dilation, sinks, learned sink logits, head_dim, key_lanes,
# dim_lanes): two contexts with sinks; three (a ctx field that holds a fourth), grouped query
# heads with learned sink logits; four, dilated
SHAPES = [(2, 1, 5, 1, 2, False, 4, 2, 2),
          (3, 2, 4, 1, 0, True, 4, 2, 2),
          (4, 1, 3, 2, 1, False, 4, 1, 4)]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"c{s[0]}-g{s[1]}-b{s[2]}x{s[3]}"
                                                        f"-s{s[4]}{'-logits' if s[5] else ''}")
@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_interleaved_contexts_each_equal_their_own_run(shape, gap):
    """Prefill context 0, prefill context 1 (…), steps of each in turn, a chunk, then a new
    sequence started on context 0, which must leave the others as they were: every run equals
    the rows of its own context's one-run model, and a ctx the core has not is refused."""
    c, g, before, dil, sinks, logits, d, kl, dl = shape
    n = 60
    seed = 31 * c + before
    print(f"seed {seed}, gaps and stalls {gap}")
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(n, d, before, 0, dilation=dil, sink_tokens=sinks)
    hw = HardwareConfig(kl, dl, max_seq_len=n, max_dilation=dil)
    p = CoreParams(spec, NumberFormat(), hw, g, 1, logits, contexts=c)
    assert p.ring_rows < 20   # (the prefills and context 0's chunk wrap every ring)
    seqs = [Sequence(rng, p, spec, ctx, logits) for ctx in range(c)]
    fresh = Sequence(rng, p, spec.replace(seq_len=20, before=before - 1,
                                          sink_tokens=max(sinks - 1, 0)), 0, logits)
    # (the last context's prefill is two rows: its credit and wait are not yet those of a
    # full window, unlike the others', so a switch that kept the last run's would show in the
    # chunks after it, of context 0 and of its own; context 0's second sequence has another
    # window and sink count than the others)
    last = c - 1
    order = [(s, 2 if s.ctx == last else 30 + s.ctx) for s in seqs]         # prefills
    # (longer than the ring: its loader runs into the credit; then a step of the same
    # context, whose record is the one written as the chunk ended)
    order += [(seqs[0], 20), (seqs[0], 1)]
    order += [(s, 1) for _ in range(3) for s in seqs[::-1]]                  # steps
    order += [(seqs[-1], 12), (fresh, 12), (seqs[1], 1), (fresh, 1)]      # a chunk; a start
    order += [(s, 1) for s in seqs[1:]] + [(fresh, 1)]
    items, wants, plan = [], [], []
    for seq, rows in order:
        item, want, span = seq.next(rows)
        items.append(item)
        wants.append(want)
        plan.append((seq.spec, span))
    bad = command(p, spec, seq_len=1, sink_scores=seqs[0].sigma, cont=True, ctx=c - 1)
    bad["ctx"] = c   # (the field holds it when C is not a power of two)
    if c < 2 ** p.ctx_bits:
        items.insert(len(items) // 2, Reject(bad))
    got = run_core_many(items, p, seed=seed, gap=gap, stall=gap)
    check_results(got, wants, refused=int(c < 2 ** p.ctx_bits))
    assert all(np.ptp(s.want) > 0 for s in seqs)   # (the rows are not trivial)
    _check_runs(p, got, plan, gap)


def test_contexts_the_core_refuses_take_nothing():
    """A continue on a context that holds no sequence (another one does), a start or a
    continue naming a context the core has not (C = 3: the field holds 3), and every
    continue after a reset (it invalidates all contexts) are refused; ``ctx_valid`` has a
    bit per context."""
    d, n = 4, 24
    spec = AttentionSpec(n, d, 4, 0, sink_tokens=1)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(2, 2, max_seq_len=n), contexts=3)
    assert core_layouts(p)["cmd"].members["ctx"].width == 2
    assert Shape.cast(core_signature(p).members["ctx_valid"].shape).width == 3
    rng = np.random.default_rng(5)
    a, b = Sequence(rng, p, spec, 0, False), Sequence(rng, p, spec, 2, False)

    def cont(ctx, rows=1):
        return Reject(command(p, spec, seq_len=rows, cont=True, ctx=ctx))

    start3 = {**command(p, spec, seq_len=4), "ctx": 3}
    cont3 = {**command(p, spec, seq_len=1, cont=True), "ctx": 3}
    (a0, w0, _), (b0, v0, _) = a.next(6), b.next(5)
    (a1, w1, _), (b1, v1, _) = a.next(1), b.next(2)
    items = [cont(0), a0, cont(1), cont(2), b0, Reject(start3), Reject(cont3),
             cont(0, n - 6 + 1),   # past max_seq_len
             a1, b1, ResetCore(), cont(0), cont(2)]
    got = run_core_many(items, p, seed=6, gap=0.2, stall=0.2)
    check_results(got, [w0, v0, w1, v1], refused=8)
    valid = [r.ctx_valid for r in got if hasattr(r, "ctx_valid")]
    assert valid == [0b000, 0b001, 0b001, 0b101, 0b101, 0b101, 0b000, 0b000]


def test_context_configuration_is_checked():
    spec, fmt = AttentionSpec.causal(131072, 64, sliding_window=128), NumberFormat()
    hw = HardwareConfig(8, 8, max_seq_len=131072)
    gpt = CoreParams(spec, fmt, hw, 64, 8, True, contexts=8)   # a GPT-OSS layer's 8 K/V heads
    one = CoreParams(spec, fmt, hw, 64, 8, True, contexts=1)
    assert gpt.ring_bits == one.ring_bits == 2 * 8 * gpt.kv_depth * 8 * 8
    assert gpt.resources()["kv_buffer_bits"] == 8 * one.resources()["kv_buffer_bits"]
    limit = MAX_KV_BUFFER_BITS // gpt.ring_bits
    CoreParams(spec, fmt, hw, 64, 8, True, contexts=limit)
    with pytest.raises(LimitError, match=rf"^contexts must be at most {limit} \(K/V rings of "
                                         rf"{gpt.ring_bits} bits each, together at most "
                                         rf"{MAX_KV_BUFFER_BITS} bits \(MAX_KV_BUFFER_BITS\), "
                                         rf"the practical limit of Verilog generation\), not "
                                         rf"{limit + 1}$") as info:
        CoreParams(spec, fmt, hw, 64, 8, True, contexts=limit + 1)
    assert info.value.field == "contexts"
    with pytest.raises(ConfigValueError, match=r"^ctx must be at most 7 \(the core's 8 "
                                               r"contexts\), not 8$") as info:
        gpt.check_context(8)
    assert info.value.field == "ctx"
    with pytest.raises(ConfigValueError, match=r"^this core has no contexts \(generated "
                                               r"without decode: contexts 0\)$"):
        CoreParams(spec, fmt, hw).check_context(0)
    with pytest.raises(ValueError, match=r"^ctx needs a core of 2 contexts or more$"):
        command(one, ctx=1)
    # one context or none: no ctx field, no store, a one-bit ctx_valid (the Verilog of those
    # cores is what it was before contexts)
    assert "ctx" not in core_layouts(one)["cmd"].members and one.ctx_bits == 0
    small = SwatCore(CoreParams(AttentionSpec(16, 4, 3, 0), fmt, HardwareConfig(2, 2),
                                contexts=1))
    small._MustUse__silence = True
    assert small.store is None
    assert Shape.cast(core_signature(one).members["ctx_valid"].shape).width == 1
    assert core_layouts(gpt)["cmd"].members["ctx"].width == 3
