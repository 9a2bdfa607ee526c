"""Verification and estimation of the SWAT core.

``regress`` and ``cocotb_swat`` run the generated Verilog under cocotb + Verilator against the
bit-exact golden model; ``amaranth_core`` runs the core in Amaranth's simulator with the golden
model's signature; ``cycle_model`` is the exact cycle model of the core and ``estimate`` the
action counts, energy and latency per sequence length (``swatkit estimate``), with the energy
tables in ``tables/``.
"""
