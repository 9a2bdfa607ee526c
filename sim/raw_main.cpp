// The raw-speed benchmark of a harness build (sim/speed.py): the same Verilated model as the
// cocotb bench (rtl/harness.py around the generated core, the same Verilator options), driven by
// a plain C++ loop with no Python and no VPI callbacks in the cycle loop. The row memories are
// loaded through VPI, as the bench does; then one command per run, the clock toggled here.
//
// usage: swat_tb Q.bin KV.bin SEED Q_GAP KV_GAP STALL N [N ...]
//   Q.bin, KV.bin: the packed rows (sim/regress.py's pack_rows), one memory word per row
// prints one JSON line: cycles (harness count), busy_cycles, core_cycles (stats.cycles),
// rows_out, seconds (cycle loop)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

double sc_time_stamp() { return 0; }

static void load(const char* path, const char* mem_name, int rows) {
    std::ifstream f(path, std::ios::binary);
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)),
                                     std::istreambuf_iterator<char>());
    vpiHandle mem = vpi_handle_by_name(const_cast<char*>(mem_name), nullptr);
    if (!mem) { fprintf(stderr, "no memory %s\n", mem_name); std::exit(2); }
    size_t per_row = bytes.size() / rows;
    for (int i = 0; i < rows; i++) {
        vpiHandle word = vpi_handle_by_index(mem, i);
        std::vector<s_vpi_vecval> vec((per_row + 3) / 4);
        for (size_t b = 0; b < per_row; b++) {
            vec[b / 4].aval |= static_cast<PLI_UINT32>(bytes[i * per_row + b]) << (8 * (b % 4));
        }
        s_vpi_value value;
        value.format = vpiVectorVal;
        value.value.vector = vec.data();
        vpi_put_value(word, &value, nullptr, vpiNoDelay);
    }
}

int main(int argc, char** argv) {
    if (argc < 8) { fprintf(stderr, "usage: %s Q.bin KV.bin SEED Q_GAP KV_GAP STALL N:CMD...\n", argv[0]); return 2; }
    // each run: its rows N and its command's payload bits CMD (a band core's command fits 64 bits)
    std::vector<int> runs;
    std::vector<unsigned long long> cmds;
    int total = 0;
    for (int i = 7; i < argc; i++) {
        char* colon = nullptr;
        runs.push_back(static_cast<int>(std::strtol(argv[i], &colon, 10)));
        cmds.push_back(std::strtoull(colon + 1, nullptr, 10));
        total += runs.back();
    }
    Verilated::commandArgs(argc, argv);
    Verilated::fatalOnVpiError(false);
    std::unique_ptr<Vtop> top(new Vtop(""));
    auto tick = [&]() { top->clk = 1; top->eval(); top->clk = 0; top->eval(); };
    top->clk = 0; top->rst = 1; top->start = 0; top->cmd___05Fvalid = 0;
    top->q_hold = 0; top->kv_hold = 0; top->o_hold = 0;
    top->eval();
    for (int i = 0; i < 3; i++) tick();
    top->rst = 0;
    load(argv[1], "swat_tb.harness.q_src.tb_q_rows.rows", total);
    load(argv[2], "swat_tb.harness.kv_src.tb_kv_rows.rows", total);
    top->eval();
    auto t0 = std::chrono::steady_clock::now();
    top->seed = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
    top->q_gap = std::atoi(argv[4]); top->kv_gap = std::atoi(argv[5]); top->o_stall = std::atoi(argv[6]);
    top->q_count = total; top->kv_count = total;
    top->start = 1; tick(); top->start = 0;
    tick();  // the command one cycle after start, as the cocotb bench gives it
    for (size_t r = 0; r < runs.size(); r++) {
        top->cmd___05Fpayload = cmds[r]; top->cmd___05Fvalid = 1;
        while (true) { bool taken = top->cmd___05Fready; tick(); if (taken) break; }
        top->cmd___05Fvalid = 0;
        while (top->busy) tick();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // stats.cycles: the first field of the stats port (48 bits), the core's own count
    uint64_t core_cycles = top->stats[0] | (static_cast<uint64_t>(top->stats[1] & 0xFFFF) << 32);
    printf("{\"cycles\": %u, \"busy_cycles\": %u, \"core_cycles\": %llu, \"rows_out\": %u, "
           "\"seconds\": %.6f}\n", top->cycles, top->busy_cycles,
           static_cast<unsigned long long>(core_cycles), top->o_rows, seconds);
    top->final();
    return 0;
}
