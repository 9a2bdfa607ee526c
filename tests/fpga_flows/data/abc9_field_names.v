// Yosys 0.70's ABC9 abort, reduced: `synth_ecp5 -top top` stops in ABC_OPS_REINTEGRATE with
// Assert `GetSize(conn.first) == GetSize(conn.second)' failed (kernel/rtlil.cc:3091).
// ABC9 names the bits it maps NAME[INDEX] and rebuilds vectors by name: bit 1 of `x` and the
// wire `x[1]` (as Amaranth names element 1 of an ArrayLayout signal `x`) are one name to it.
// Bit 0 of `x[1]` is constant, so only its bits 1..2 are ABC9 inputs. (fpga_flows/abc9.py)
module top(input clk, input [3:0] d, input [1:0] e, output [3:0] q, output [1:0] r);
  reg [3:0] x;
  reg [2:0] \x[1] ;
  always @(posedge clk) begin
    x <= d;
    \x[1] <= {e, 1'b0};
  end
  assign q = x + 1;
  assign r = \x[1] [2:1] + 1;
endmodule
