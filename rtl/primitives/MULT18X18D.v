// Simulation model of the subset of Lattice ECP5's MULT18X18D (sysDSP 18x18 multiplier) that
// swatkit instantiates (rtl/units.py, registered_mul), for Verilator. Yosys ships the primitive
// only as a black box, so the regression needs this model to simulate Verilog exported with
// `--dsp ecp5`.
//
// Modelled: P = A * B, each operand signed or unsigned by SIGNEDA/SIGNEDB; the A, B and output
// registers, each either off ("NONE") or clocked by CLK0 with a selectable clock enable
// (CE0..CE3) and synchronous reset (RST0..RST3, RESETMODE "SYNC"; reset wins over the enable).
// SIGNEDA/SIGNEDB are registered with their operand, as in the device. Not modelled (the
// instance must not use them; a simulation that does stops at time 0): the C input, shift
// chains (SOURCEA/SOURCEB, SRI*/SRO*, RO*), the pipeline register, CLK1..CLK3, asynchronous
// reset. GSR is not modelled: the registers start at 0.
// The primitive's full parameter and port list is kept (instances name them); those outside the
// subset are unused here. Registers start at 0 as Amaranth's do (the declaration initialiser).
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off PROCASSINIT */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0",
    parameter REG_INPUTB_CLK = "NONE", parameter REG_INPUTB_CE = "CE0",
    parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_INPUTC_CE = "CE0",
    parameter REG_INPUTC_RST = "RST0",
    parameter REG_PIPELINE_CLK = "NONE", parameter REG_PIPELINE_CE = "CE0",
    parameter REG_PIPELINE_RST = "RST0",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",
    parameter REG_OUTPUT_RST = "RST0",
    parameter CLK0_DIV = "ENABLED", parameter CLK1_DIV = "ENABLED",
    parameter CLK2_DIV = "ENABLED", parameter CLK3_DIV = "ENABLED",
    parameter HIGHSPEED_CLK = "NONE", parameter GSR = "ENABLED",
    parameter CAS_MATCH_REG = "FALSE", parameter SOURCEB_MODE = "B_SHIFT",
    parameter MULT_BYPASS = "DISABLED", parameter RESETMODE = "SYNC"
) (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3,
    input CE0, CE1, CE2, CE3,
    input RST0, RST1, RST2, RST3,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                     A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                     B1, B0};
    wire [17:0] c = {C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2,
                     C1, C0};
    // the clock enable and reset each register selects: "CE0".."CE3", "RST0".."RST3" end in the
    // characters "0".."3", whose two low bits are the index
    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};
    wire a_ce = ce[REG_INPUTA_CE[1:0]], a_rst = rst[REG_INPUTA_RST[1:0]];
    wire b_ce = ce[REG_INPUTB_CE[1:0]], b_rst = rst[REG_INPUTB_RST[1:0]];
    wire p_ce = ce[REG_OUTPUT_CE[1:0]], p_rst = rst[REG_OUTPUT_RST[1:0]];

    initial begin
        if (REG_INPUTC_CLK != "NONE" || REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC"
            || MULT_BYPASS != "DISABLED")
            $fatal(1, "MULT18X18D model: only the A/B/output registers, synchronous reset");
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
            || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0"))
            $fatal(1, "MULT18X18D model: registers are clocked by CLK0 or off");
    end

    reg [17:0] a_r = 0, b_r = 0;
    reg sa_r = 0, sb_r = 0;
    reg [35:0] p_r = 0;
    wire [17:0] a_v = REG_INPUTA_CLK == "NONE" ? a : a_r;
    wire [17:0] b_v = REG_INPUTB_CLK == "NONE" ? b : b_r;
    wire sa_v = REG_INPUTA_CLK == "NONE" ? SIGNEDA : sa_r;
    wire sb_v = REG_INPUTB_CLK == "NONE" ? SIGNEDB : sb_r;
    wire signed [36:0] a_x = {{19{sa_v & a_v[17]}}, a_v};
    wire signed [36:0] b_x = {{19{sb_v & b_v[17]}}, b_v};
    wire signed [73:0] full = a_x * b_x;
    wire [35:0] product = full[35:0];

    always @(posedge CLK0) begin
        if (a_rst) begin
            a_r <= 0; sa_r <= 0;
        end else if (a_ce) begin
            a_r <= a; sa_r <= SIGNEDA;
        end
        if (b_rst) begin
            b_r <= 0; sb_r <= 0;
        end else if (b_ce) begin
            b_r <= b; sb_r <= SIGNEDB;
        end
        if (p_rst)
            p_r <= 0;
        else if (p_ce)
            p_r <= product;
    end

    wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? product : p_r;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;
endmodule
/* verilator lint_on PROCASSINIT */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
