"""fpga_flows/report.py: a flow.json read back with every record checked by type and range, and
its core record checked against its spec/format/hardware records; nothing coerced, nothing
replaced by a default."""

import copy
import json
import re

import pytest

from swatkit.fpga_flows.report import ReportError, read_report, read_side_record

# as `swatkit flow --collect` writes it (iCEBreaker, causal window of 9 keys)
FLOW = {"board": "icebreaker",
        "fmax_mhz": {"cd_sync.clk": {"achieved": 28.2, "constraint": 25.0, "met": True},
                     "$PACKER_GND_NET": {"achieved": 900.0}},
        "utilization": {"LUT": {"used": 4362, "available": 5280, "cell": "ICESTORM_LC"},
                        "DSP": {"used": 3, "available": 8, "cell": "ICESTORM_DSP"}},
        "core": {"head_dim": 8, "window": 9, "key_lanes": 1, "dim_lanes": 2, "data_bits": 8,
                 "cycles_per_row": 36},
        "spec": {"seq_len": 1024, "head_dim": 8, "before": 8, "after": 0, "dilation": 1,
                 "global_tokens": [], "block_size": 0, "num_random_blocks": 0,
                 "pattern_seed": None, "explicit_random_table": None},
        "format": {"data_bits": 8, "prob_bits": 16, "exp_frac_bits": 6, "const_bits": 16,
                   "out_bits": 8, "out_frac_bits": 0, "scale_q": 0.03125, "scale_k": 0.03125,
                   "scale_v": 0.03125},
        "hardware": {"key_lanes": 1, "dim_lanes": 2, "max_seq_len": 1024,
                     "max_global_tokens": 0, "max_dilation": 1, "global_engines": 0}}


def write(tmp_path, record, name="flow.json"):
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


def test_a_report_as_written(tmp_path):
    report = read_report(write(tmp_path, FLOW))
    assert report.board == "icebreaker"
    assert report.core == {k: FLOW["core"][k] for k in ("head_dim", "window", "key_lanes",
                                                         "dim_lanes", "data_bits")}
    assert (report.params.window, report.params.hw.max_seq_len) == (9, 1024)
    assert report.fmax_mhz == 28.2   # (not the constant net's 900)
    assert report.utilization == {"LUT": {"used": 4362, "available": 5280},
                                  "DSP": {"used": 3, "available": 8}}


def changed(path, value):
    record = copy.deepcopy(FLOW)
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if value is KeyError:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return record


@pytest.mark.parametrize(("path", "value", "message"), [
    (("core", "head_dim"), "8", "{p}: core head_dim must be an integer, not '8'"),
    (("core", "key_lanes"), True, "{p}: core key_lanes must be an integer, not True"),
    (("core", "window"), 10 ** 12,
     "{p}: core window must be an integer in 1..16385, not 1000000000000"),
    (("core", "window"), KeyError, "{p}: core has no window"),
    (("core",), [8], "{p}: core must be a record of head_dim, window, key_lanes, dim_lanes, "
                     "data_bits, not [8]"),
    (("core", "head_dim"), 16,
     "{p}: its core record says head_dim 16, its spec, format and hardware records head_dim 8"),
    (("core", "window"), 17,
     "{p}: its core record says window 17, its spec, format and hardware records window 9"),
    (("format", "data_bits"), 6,
     "{p}: its core record says data_bits 8, its spec, format and hardware records data_bits 6"),
    (("hardware",), KeyError, "{p}: hardware must be a record (spec, format and hardware come "
                              "together), not None"),
    (("spec", "head_dim"), 8.0, "{p}: its spec, format and hardware records make no core: "
                                "head_dim must be an integer, not 8.0"),
    (("spec", "junk"), 1, "{p}: spec has an unknown field 'junk'"),
    (("utilization", "LUT", "used"), -4000,
     "{p}: utilization LUT used must be a non-negative integer, not -4000"),
    (("utilization", "LUT", "used"), "4362",
     "{p}: utilization LUT used must be an integer, not '4362'"),
    (("utilization", "LUT", "used"), 6000,
     "{p}: utilization LUT used 6000 is more than available 5280"),
    (("utilization", "LUT"), [1],
     "{p}: utilization LUT must be a record with used and available, not [1]"),
    (("utilization",), 3, "{p}: utilization must be a record per resource, not 3"),
    (("fmax_mhz", "cd_sync.clk", "achieved"), "fast",
     "{p}: fmax_mhz of clock 'cd_sync.clk' must be a positive number of MHz, not 'fast'"),
    (("fmax_mhz", "cd_sync.clk", "achieved"), -5.0,
     "{p}: fmax_mhz of clock 'cd_sync.clk' must be a positive number of MHz, not -5.0"),
    (("fmax_mhz",), [1, 2], "{p}: fmax_mhz must be a positive number of MHz, not [1, 2]"),
    (("board",), 7, "{p}: board must be a board's name, not 7"),
])
def test_a_corrupt_record_is_refused(tmp_path, path, value, message):
    p = write(tmp_path, changed(path, value))
    with pytest.raises(ReportError, match=f"^{re.escape(message.format(p=p))}$"):
        read_report(p)


def test_optional_records(tmp_path):
    """An earlier swatkit's report (a core record only), a flow that did not time a clock."""
    old = {"board": "ulx3s-85f", "core": FLOW["core"], "fmax_mhz": {"c": {"achieved": None}}}
    report = read_report(write(tmp_path, old))
    assert report.params is None and report.fmax_mhz is None and report.utilization == {}
    assert read_report(write(tmp_path, {"fmax_mhz": 50})).fmax_mhz == 50.0


def test_not_a_report(tmp_path):
    p = write(tmp_path, [1, 2])
    with pytest.raises(ReportError, match=rf"^{re.escape(str(p))} is not a flow\.json report "
                                          r"\(a JSON object\)$"):
        read_report(p)
    with pytest.raises(ReportError, match=r"^/dev/zero is a device, not a file$"):
        read_report("/dev/zero")


def test_side_record(tmp_path):
    assert read_side_record(tmp_path / "swatkit.json") == {}
    p = write(tmp_path, {"selftest": [1]}, "swatkit.json")
    with pytest.raises(ReportError, match=rf"^{re.escape(str(p))}: selftest must be a record, "
                                          r"not \[1\]$"):
        read_side_record(p)
