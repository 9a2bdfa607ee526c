"""The clock of the simulated tops: :mod:`swatkit.sim.regress` writes each top with
``always #(PERIOD_NS/2) clk = ~clk``, and the cocotb benches (:mod:`swatkit.sim.cocotb_swat`,
:mod:`swatkit.fpga_flows.cocotb_selftest`) wait in its units. A module of its own so that a
bench, which starts in every simulator process, need not import the regression's driver."""

PERIOD_NS = 10
