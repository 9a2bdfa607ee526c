"""Datapath units of the SWAT core: base-2 exp, deferred normalisation, reductions.

Each pipelined unit is written once, as a function that builds its stages into a module under a
shared clock enable (the core's stall-all pipelines call it), and is also offered as a
``wiring.Component`` with ``amaranth.lib.stream`` ports (tested on its own, exhaustively where the
input space is small).

Stream transfer rule (every unit, every port): a payload moves when ``valid & ready`` in a cycle;
``valid`` never waits for ``ready``; a producer holds payload and ``valid`` until the transfer.
The stall-all wrapper asserts ``i.ready = ~o.valid | o.ready`` and moves every stage together.

Number formats and rounding are those of :mod:`swatkit.golden.numerics`, steps 2–6.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import (
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    signed,
    unsigned,
)
from amaranth.hdl import Assert, Assume
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import NumberFormat
from swatkit.golden.numerics import clog2

__all__ = [
    "DSP_TARGETS",
    "EXP_LATENCY",
    "STAT_BITS",
    "BankedMemory",
    "Divider",
    "DspTarget",
    "Exp2",
    "FormalPlatform",
    "covered_select",
    "divide_stages",
    "divider_latency",
    "exp2_stages",
    "max_tree",
    "max_tree_levels",
    "pipeline_stage",
    "ram_bank_words",
    "registered_mul",
    "state_invariants",
    "sum_tree",
]

EXP_LATENCY = 4
STAT_BITS = 48   # the width of every performance counter of the core (``stats``)


def _reg(m: Module, en, value, name: str, shape=None):
    """A register loaded with ``value`` whenever ``en``."""
    r = Signal(shape if shape is not None else value.shape(), name=name)
    with m.If(en):
        m.d.sync += r.eq(value)
    return r


class FormalPlatform(str):
    """The platform ``"formal"`` (Amaranth's FIFOs add their own assertions for it) that also
    says what the stages do with their own invariants (:func:`state_invariants`): ``"assert"``
    them (the job that proves them) or ``"assume"`` them (the jobs that prove the properties
    with the invariants given). A plain ``"formal"`` platform adds none."""

    def __new__(cls, invariants: str):
        if invariants not in ("assert", "assume"):
            raise ValueError(f"invariants must be 'assert' or 'assume', not {invariants!r}")
        platform = super().__new__(cls, "formal")
        platform.invariants = invariants
        return platform


def state_invariants(m: Module, platform, checks) -> None:
    """A stage's invariants, ``(test, message)`` pairs that hold in every reachable state,
    asserted or assumed in ``m`` under a :class:`FormalPlatform` (and nothing elsewhere: no
    logic in a build or a simulation)."""
    mode = getattr(platform, "invariants", None)
    if mode is None:
        return
    statement = Assert if mode == "assert" else Assume
    m.d.comb += [statement(test, message) for test, message in checks]


def pipeline_stage(m: Module, name: str, en=1, /, **fields) -> SimpleNamespace:
    """A pipeline register stage: each field registered as ``<name>_<field>`` under ``en``."""
    regs = {key: Signal(value.shape(), name=f"{name}_{key}") for key, value in fields.items()}
    with m.If(en):
        m.d.sync += [regs[key].eq(value) for key, value in fields.items()]
    return SimpleNamespace(**regs)


DSP_TARGETS = ("generic", "ecp5")
"""Multiplier targets of a Verilog export: generic logic (any tool maps it) or ECP5 primitives."""


class DspTarget:
    """Stands in for an Amaranth platform when Verilog is exported for a device family without
    a board (``swatkit generate --dsp``): it carries only ``family``, which
    :func:`registered_mul` reads."""

    def __init__(self, family: str, ram_bank_words: int | None = None):
        self.family = family
        if ram_bank_words is not None:
            self.ram_bank_words = ram_bank_words


RAM_BANK_WORDS = {"ecp5": 512}
"""Words of one block RAM at its widest read port, by device family (the ECP5's DP16KD: 512 ×
36): :class:`BankedMemory`'s bank on that family."""


def ram_bank_words(platform) -> int | None:
    """The bank of :class:`BankedMemory` for ``platform``: its ``ram_bank_words`` if it has one
    (:class:`DspTarget` may carry one, for tests), else :data:`RAM_BANK_WORDS` of its family;
    ``None`` (one bank) for simulation and the families without an entry."""
    words = getattr(platform, "ram_bank_words", None)
    return words if words is not None else RAM_BANK_WORDS.get(getattr(platform, "family", None))


class BankedMemory:
    """A memory of ``depth`` words built of banks of ``bank_words`` words (a power of two; the
    last bank holds the rest), whose reads are registered in the fabric once per bank, before
    the bank is chosen.

    A deep memory mapped to several block RAMs has a multiplexer after their outputs; on an ECP5
    a DP16KD's clock-to-output (~5.6 ns, no output register) and the route to the next register
    leave no time for it at 100 MHz. With one block RAM's depth per bank, each bank's register
    can sit beside its block RAMs and the multiplexer runs from registers.
    :meth:`read_registered` gives the word two cycles after its address either way (the read and
    its register), so the banks change no schedule. ``bank_words=None``: one bank, a read port and
    one register.

    The caller promises that no word is read in the cycle it is written (the K/V ring's credit
    and the random buffers' alternation see to it). The banks carry Yosys' ``no_rw_check``
    attribute, and each bank's read is a combinational read port followed by a register, which
    Yosys merges into the block RAM's read port as a port whose read-during-write is undefined.
    A synchronous read port instead (what Amaranth writes for ``read_port()``) keeps Amaranth's
    "old data" rule, which an ECP5 ``DP16KD`` has not across its two ports, and Yosys builds it
    in the fabric: the write delayed by a register and a bypass multiplexer on every read bit,
    between the block RAM and the next register (the ULX3S default's critical path; docs/fpga.md).
    ``collision`` is 1 in a cycle that breaks the promise; the simulated runs of
    :func:`~swatkit.sim.amaranth_core.run_core_many` check that it never is (synthesis removes
    it: nothing reads it).
    """

    def __init__(self, m: Module, name: str, shape, depth: int, bank_words: int | None = None):
        if bank_words is not None and (bank_words < 1 or bank_words & (bank_words - 1)):
            raise ValueError(f"bank_words must be a power of two, not {bank_words}")
        if bank_words is None or depth <= bank_words:
            sizes = [depth]
        else:
            sizes = [min(bank_words, depth - start) for start in range(0, depth, bank_words)]
        self._m, self._shape, self._depth = m, shape, depth
        self._low = clog2(bank_words) if len(sizes) > 1 else None
        self.banks = [memory.Memory(shape=shape, depth=n, init=[], attrs={"no_rw_check": 1})
                      for n in sizes]
        for i, mem in enumerate(self.banks):
            m.submodules[name if len(sizes) == 1 else f"{name}_{i}"] = mem
        self.collision = Signal(name=f"{name}_collision")
        self._write = None
        self._collisions = []

    def write_port(self):
        """A write port (``addr``, ``data``, ``en``) over every bank."""
        m = self._m
        port = SimpleNamespace(addr=Signal(range(max(self._depth, 2))),
                               data=Signal(self._shape), en=Signal())
        for i, mem in enumerate(self.banks):
            wp = mem.write_port()
            if self._low is None:
                m.d.comb += [wp.addr.eq(port.addr), wp.data.eq(port.data), wp.en.eq(port.en)]
            else:
                m.d.comb += [wp.addr.eq(port.addr[:self._low]), wp.data.eq(port.data),
                             wp.en.eq(port.en & (port.addr[self._low:] == i))]
        self._write = port
        return port

    def read_registered(self, addr, en, reg_en, name: str, used=None):
        """The word at ``addr`` two cycles on: read when ``en`` (held otherwise, as a read
        port), then registered when ``reg_en``. ``used`` (default ``en``): the read's word is
        used, the condition of :attr:`collision`."""
        m = self._m
        if self._write is not None:   # (a used read where the same cycle writes)
            used = en if used is None else used
            self._collisions.append(used & self._write.en & (addr == self._write.addr))
            m.d.comb += self.collision.eq(Cat(*self._collisions).any())
        regs = []
        for i, mem in enumerate(self.banks):
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(addr if self._low is None else addr[:self._low])
            # (the block RAM's own read register, merged into its port by Yosys)
            word = _reg(m, en, rp.data, f"{name}_rd" if self._low is None else f"{name}_rd{i}")
            regs.append(_reg(m, reg_en, word,
                             name if self._low is None else f"{name}_bank{i}"))
        if self._low is None:
            return regs[0]
        sel = _reg(m, en, addr[self._low:], f"{name}_rsel")
        sel = _reg(m, reg_en, sel, f"{name}_sel")
        return covered_select(m, sel, regs, self._shape, name)


def covered_select(m: Module, index, values: list, shape, name: str) -> Signal:
    """``values[index]`` as a multiplexer whose every index is covered (an index past the end
    gives the last value; ``Array(values)[index]`` leaves those cases out of the Verilog, which
    ``verilator -Wall`` reports)."""
    out = Signal(shape, name=name)
    with m.Switch(index):
        for i, value in enumerate(values[:-1]):
            with m.Case(i):
                m.d.comb += out.eq(value)
        with m.Default():
            m.d.comb += out.eq(values[-1])
    return out


def _ecp5_mul_fits(a, b) -> bool:
    """Both operands fit one MULT18X18D port: 18 bits signed, 17 bits unsigned."""
    return all(v.shape().width + (not v.shape().signed) <= 18 for v in (a, b))


def registered_mul(m: Module, platform, a, b, out: Signal, *, en_a=1, en_b=1, en_out=1,
                   name: str, a_attrs=None):
    """``out ← a_r · b_r`` where ``a_r ← a`` (when ``en_a``) and ``b_r ← b`` (when ``en_b``): a
    multiplier with registered operands and a registered product, two cycles from ``a``/``b`` to
    ``out``, every register reset with the ``sync`` domain (if it has a reset).

    On an ECP5 (``platform.family == "ecp5"``) with operands that fit 18×18, this is one
    ``MULT18X18D`` with its input A/B and output registers on (clock enables CE0/CE1/CE2); placing
    the registers in the DSP block leaves only routing (not the multiplier array) between fabric
    registers. Elsewhere (simulation, Verilog export, iCE40, Gowin) it is the same registers and
    product in generic logic, for the vendor flow to map.
    """
    if getattr(platform, "family", None) == "ecp5" and _ecp5_mul_fits(a, b):
        ports = {}
        for port, value in (("A", a), ("B", b)):
            wide = Signal(signed(18), name=f"{name}_{port.lower()}")
            m.d.comb += wide.eq(value)
            ports.update({f"i_{port}{i}": wide[i] for i in range(18)})
        product = Signal(signed(36), name=f"{name}_p")
        ports.update({f"o_P{i}": product[i] for i in range(36)})
        ports.update({f"i_C{i}": 0 for i in range(18)})
        m.submodules[name] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE1", p_REG_INPUTB_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE2", p_REG_OUTPUT_RST="RST0",
            p_RESETMODE="SYNC", p_GSR="DISABLED",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal("sync"), i_CLK1=0, i_CLK2=0, i_CLK3=0,
            i_CE0=en_a, i_CE1=en_b, i_CE2=en_out, i_CE3=0,
            i_RST0=ResetSignal("sync", allow_reset_less=True), i_RST1=0, i_RST2=0, i_RST3=0,
            **ports)
        m.d.comb += out.eq(product)
        return
    a_r = Signal(a.shape(), name=f"{name}_a", attrs=a_attrs or {})
    b_r = Signal(b.shape(), name=f"{name}_b")
    with m.If(en_a):
        m.d.sync += a_r.eq(a)
    with m.If(en_b):
        m.d.sync += b_r.eq(b)
    with m.If(en_out):
        m.d.sync += out.eq(a_r * b_r)


def sum_tree(values):
    """Balanced adder tree (combinational); widths grow by Amaranth's rules, so nothing wraps."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def max_tree_levels(n: int) -> int:
    """Register levels of :func:`max_tree` over ``n`` values: ``max(1, ceil(log2 n))``."""
    return max(1, (n - 1).bit_length())


def max_tree(m: Module, values, valids, name: str = "max"):
    """Largest of the ``values`` whose ``valids`` bit is set: ``(value, any_valid)``.

    A balanced tree of compare-and-select nodes with a register after every level (one compare
    per cycle), so the result comes ``max_tree_levels(len(values))`` cycles after its inputs.
    """
    pairs = list(zip(values, valids, strict=True))
    for level in range(max_tree_levels(len(pairs))):
        nxt = []
        for i in range(0, len(pairs), 2):
            if i + 1 == len(pairs):
                a, va = pairs[i]
                value, valid = a, va
            else:
                (a, va), (b, vb) = pairs[i], pairs[i + 1]
                take_b = vb & (~va | (b > a))
                value, valid = Mux(take_b, b, a), va | vb
            node = f"{name}{level}_{i // 2}"
            nxt.append((_reg(m, 1, value, node), _reg(m, 1, valid, f"{node}_valid")))
        pairs = nxt
    return pairs[0]


def exp2_stages(m: Module, en, diffs, fmt: NumberFormat, head_dim: int, name="exp",
                saturated=None, platform=None):
    """``p = EXP[x mod 2^F] >> min(x >> F, P)`` for each lane's ``D = m − S`` (steps 2–4).

    ``diffs``: unsigned values (any width). Returns the list of ``p`` (unsigned ``prob_bits``)
    registered ``EXP_LATENCY`` cycles after ``diffs`` (stages advance when ``en``).
    ``saturated``: optionally, each lane's ``D > d_sat`` worked out by the caller beside ``D``
    rather than after it (the core compares the score with ``m − d_sat``, so that the subtract
    and the compare are not in series). ``platform``: stages 1–2 (the clamped ``D`` register and
    the ``D·C`` product register) are a :func:`registered_mul` with ``C`` as its other operand,
    so that on an ECP5 both registers are the ``MULT18X18D``'s own.
    """
    const = fmt.softmax_constant(head_dim)
    frac, prob = fmt.exp_frac_bits, fmt.prob_bits
    dbits = const.d_sat.bit_length()
    out = []
    for lane, d in enumerate(diffs):
        n = f"{name}{lane}"
        # 1: clamp at d_sat (every larger D gives p = 0 as well)
        sat = d > const.d_sat if saturated is None else saturated[lane]
        dc = Signal(unsigned(dbits), name=f"{n}_d")
        m.d.comb += dc.eq(Mux(sat, const.d_sat, d))
        # 2: D·C (a constant multiplier; the clamped D is its A register)
        prod = Signal(unsigned(dbits + fmt.const_bits), name=f"{n}_x")
        registered_mul(m, platform, dc, Const(const.value, unsigned(fmt.const_bits)), prod,
                       en_a=en, en_out=en, name=f"{n}_mul")
        # 3: round half up to F fraction bits, split, look up 2^(-f/2^F)
        x = (prod + (1 << (const.shift - 1))) >> const.shift
        e = x >> frac
        rom = memory.Memory(shape=unsigned(prob), depth=2 ** frac,
                            init=[int(v) for v in fmt.exp_table()])
        m.submodules[f"{n}_rom"] = rom
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(x[:frac]), rd.en.eq(en)]
        shift = _reg(m, en, Mux(e > prob, prob, e), f"{n}_e", unsigned(clog2(prob + 1)))
        # 4: truncating shift
        out.append(_reg(m, en, rd.data >> shift, f"{n}_p", unsigned(prob)))
    return out


def divider_latency(fmt: NumberFormat) -> int:
    return fmt.data_bits + fmt.out_frac_bits + 2


def divide_stages(m: Module, en, accs, total, fmt: NumberFormat, name="div"):
    """``o = sat(round_half_away(acc·2^f / l))`` for each lane (step 6), one quotient bit per
    stage: a restoring divider on ``|acc|``, then the sign, then saturation.

    ``accs``: signed values; ``total``: the unsigned ``l > 0`` shared by the lanes. Returns the
    outputs (signed ``out_bits``) registered ``divider_latency(fmt)`` cycles later.
    """
    qbits = fmt.data_bits + fmt.out_frac_bits  # |o| <= max|v|·2^f < 2^qbits
    dens = [_reg(m, en, total << 1, f"{name}_den")]                   # 2·l, one per stage
    for k in range(qbits):
        dens.append(_reg(m, en, dens[-1], f"{name}_den{k}"))
    outs = []
    for lane, acc in enumerate(accs):
        n = f"{name}{lane}"
        mag = Mux(acc < 0, -acc, acc).as_unsigned()
        rem = _reg(m, en, (mag << (fmt.out_frac_bits + 1)) + total, f"{n}_num")  # 2|a|·2^f + l
        neg = _reg(m, en, acc < 0, f"{n}_neg")
        quo = Const(0, unsigned(qbits))
        for stage, k in enumerate(reversed(range(qbits))):
            trial = dens[stage] << k
            take = rem >= trial
            rem = _reg(m, en, Mux(take, rem - trial, rem), f"{n}_r{k}", rem.shape())
            quo = _reg(m, en, quo | Mux(take, 1 << k, 0), f"{n}_q{k}", unsigned(qbits))
            neg = _reg(m, en, neg, f"{n}_s{k}")
        value = Mux(neg, -quo, quo)
        sat = Mux(value > fmt.out_max, fmt.out_max, Mux(value < fmt.out_min, fmt.out_min, value))
        outs.append(_reg(m, en, sat, f"{n}_o", signed(fmt.out_bits)))
    return outs


class _StallAll(wiring.Component):
    """Stream wrapper of a pipeline built under a single clock enable."""

    def _pipeline(self, m: Module, latency: int):
        en = Signal(name="en")
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        valid = self.i.valid
        for k in range(latency):
            valid = _reg(m, en, valid, f"valid{k}")
        m.d.comb += self.o.valid.eq(valid)
        return en


class Exp2(_StallAll):
    """Base-2 exp of ``lanes`` differences ``D = m − S`` (steps 2–4 of the contract).

    Ports: ``i`` stream of ``ArrayLayout(unsigned(diff_bits), lanes)``; ``o`` stream of
    ``ArrayLayout(unsigned(prob_bits), lanes)``. Latency ``EXP_LATENCY`` cycles, one beat per
    cycle.
    """

    def __init__(self, fmt: NumberFormat, head_dim: int, lanes: int = 1, diff_bits: int = 24):
        self.fmt, self.head_dim, self.lanes = fmt, head_dim, lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(diff_bits), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(fmt.prob_bits), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        en = self._pipeline(m, EXP_LATENCY)
        p = exp2_stages(m, en, [self.i.payload[k] for k in range(self.lanes)], self.fmt,
                        self.head_dim)
        m.d.comb += [self.o.payload[k].eq(p[k]) for k in range(self.lanes)]
        return m


class Divider(_StallAll):
    """Deferred normalisation of ``lanes`` accumulators by one probability sum (step 6).

    Ports: ``i`` stream of ``{acc: ArrayLayout(signed(acc_bits), lanes), total:
    unsigned(sum_bits)}``; ``o`` stream of ``ArrayLayout(signed(out_bits), lanes)``.
    Latency ``divider_latency(fmt)`` cycles, one beat per cycle.
    """

    def __init__(self, fmt: NumberFormat, acc_bits: int, sum_bits: int, lanes: int = 1):
        self.fmt, self.lanes = fmt, lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "acc": data.ArrayLayout(signed(acc_bits), lanes),
                "total": unsigned(sum_bits)}))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(fmt.out_bits), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        en = self._pipeline(m, divider_latency(self.fmt))
        outs = divide_stages(m, en, [self.i.payload.acc[k] for k in range(self.lanes)],
                             self.i.payload.total, self.fmt)
        m.d.comb += [self.o.payload[k].eq(outs[k]) for k in range(self.lanes)]
        return m
