"""CoreParams: the configuration object, and its dict form read back (``from_dict``)."""

import json

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams

CONFIGS = [
    CoreParams(AttentionSpec.longformer(4096, 64, attention_window=512), NumberFormat(),
               HardwareConfig()),
    CoreParams(AttentionSpec(seq_len=300, head_dim=96, before=7, after=0, dilation=2,
                             global_tokens=(0, 5, 17)),
               NumberFormat(data_bits=6, out_bits=10, out_frac_bits=2),
               HardwareConfig(key_lanes=3, dim_lanes=8, max_seq_len=512, max_dilation=4,
                              max_global_tokens=4)),
    CoreParams(AttentionSpec(seq_len=64, head_dim=8, before=0, after=0, block_size=8,
                             num_random_blocks=2,
                             explicit_random_table=((3, 5), (4, 6), (1, 5), (2, 6), (3, 1),
                                                    (2, 4))),
               NumberFormat(), HardwareConfig(key_lanes=2, dim_lanes=4, max_seq_len=64)),
]


@pytest.mark.parametrize("p", CONFIGS, ids=["default", "causal-dilated-global", "bigbird"])
def test_from_dict_inverts_as_dict_through_json(p):
    record = json.loads(json.dumps(p.as_dict()))
    assert CoreParams.from_dict(record) == p
    # the tables alone are enough
    assert CoreParams.from_dict({k: record[k] for k in ("spec", "format", "hardware")}) == p


def test_from_dict_refuses_what_does_not_add_up():
    record = json.loads(json.dumps(CONFIGS[0].as_dict()))
    with pytest.raises(TypeError, match=r"^a core record must be a table, not list$"):
        CoreParams.from_dict([])
    with pytest.raises(TypeError, match=r"^the core record's 'format' must be a table, not "
                                        r"NoneType$"):
        CoreParams.from_dict({**record, "format": None})
    bad = {**record, "derived": {**record["derived"], "kv_depth": 1}}
    with pytest.raises(ValueError, match=r"^the core record's 'derived' are not those of its "
                                         r"spec, format and hardware$"):
        CoreParams.from_dict(bad)
    with pytest.raises(ValueError):   # a refused value, as the constructors refuse it
        CoreParams.from_dict({**record, "hardware": {**record["hardware"], "key_lanes": 0}})


def test_the_swatkit_json_generate_writes_reads_back(tmp_path):
    from swatkit.rtl.generate import generate

    p = CoreParams(AttentionSpec(seq_len=32, head_dim=4, before=2, after=2, global_tokens=(0,)),
                   NumberFormat(), HardwareConfig(key_lanes=1, dim_lanes=2, max_seq_len=32,
                                                  max_global_tokens=2))
    out = generate(p, out_dir=tmp_path)
    assert CoreParams.from_dict(json.loads(out.config.read_text())) == p


def test_of_passes_the_params_whole():
    p = CONFIGS[1]
    assert CoreParams.of(p) is p
    assert CoreParams.of(p.spec, p.fmt, p.hw) == p
    assert CoreParams.of(p.spec) == CoreParams(p.spec, NumberFormat(), HardwareConfig())
    for extra in ({"hw": p.hw}, {"heads": 2}):
        with pytest.raises(TypeError, match=r"^fmt, hw and the head group are the CoreParams' "
                                            r"own; give them only with an AttentionSpec$"):
            CoreParams.of(p, **extra)
    band = AttentionSpec(64, 8, 3, 3)   # (a group runs on a token band without global rows)
    grouped = CoreParams.of(band, hw=HardwareConfig(2, 4, max_seq_len=64), heads=4, kv_heads=2)
    assert (grouped.heads, grouped.kv_heads, grouped.group_heads) == (4, 2, 2)


def test_estimate_params_skip_only_the_limits_of_generation():
    from swatkit.rtl import LimitError
    from swatkit.rtl.config import MAX_WINDOW

    n = MAX_WINDOW + 1   # a full-attention layer of n rows: n keys per row
    spec, hw = AttentionSpec(n, 64, n - 1, n - 1), HardwareConfig(max_seq_len=n)
    with pytest.raises(LimitError) as info:
        CoreParams(spec, NumberFormat(), hw)
    assert info.value.field == "window"
    p = CoreParams.for_estimate(spec, NumberFormat(), hw)
    assert (p.spec, p.fmt, p.hw, p.generated) == (spec, NumberFormat(), hw, False)
    assert p.max_keys == n
    with pytest.raises(ValueError, match=r"^these parameters are an estimate's "
                                         r"\(CoreParams.for_estimate\): a core is generated "
                                         r"from CoreParams$"):
        CoreParams.of(p)   # (what SwatCore, AxisSwatCore and generate take their params by)
    with pytest.raises(ValueError, match=r"^dim_lanes \(7\) must divide head_dim \(64\)$"):
        CoreParams.for_estimate(spec, NumberFormat(), hw.replace(dim_lanes=7))
    with pytest.raises(LimitError) as info:   # (a limit of the estimate's own: N)
        CoreParams.for_estimate(spec.replace(head_dim=2048), NumberFormat(), hw)
    assert info.value.field == "head_dim"


def test_configuration_errors_carry_their_field_through_pickling():
    """A configuration error names its field (``error.field``), also after a trip to a worker
    process and back."""
    import pickle

    from swatkit.golden.checks import ConfigTypeError, ConfigValueError
    from swatkit.rtl import LimitError

    cases = [(lambda: HardwareConfig(key_lanes=0), ConfigValueError, "key_lanes",
              "key_lanes must be an integer in 1..64, not 0"),
             (lambda: HardwareConfig(max_seq_len=0), ConfigValueError, "max_seq_len",
              "max_seq_len must be a positive integer, not 0"),
             (lambda: HardwareConfig(dim_lanes="8"), ConfigTypeError, "dim_lanes",
              "dim_lanes must be an integer, not '8'"),
             (lambda: NumberFormat(scale_q=0.0), ConfigValueError, "scale_q",
              "scale_q must be a positive finite number, not 0.0"),
             (lambda: AttentionSpec(8, 4, 1, 1, global_tokens=(9,)), ConfigValueError,
              "global_tokens", "global token 9 is outside the sequence [0, 8)"),
             (lambda: CoreParams(AttentionSpec(8, 4, 1, 1), NumberFormat(),
                                 HardwareConfig(key_lanes=1, dim_lanes=3, max_seq_len=8)),
              ConfigValueError, "dim_lanes", "dim_lanes (3) must divide head_dim (4)"),
             (lambda: CoreParams(AttentionSpec(8, 2048, 1, 1), NumberFormat(),
                                 HardwareConfig(max_seq_len=8)), LimitError, "head_dim",
              "head_dim must be at most 1024 (the practical limit of Verilog generation), "
              "not 2048")]
    for make, kind, field, message in cases:
        with pytest.raises(kind) as info:
            make()
        for error in (info.value, pickle.loads(pickle.dumps(info.value))):
            assert (type(error), error.field, str(error)) == (kind, field, message)
    # (a NumPy integer is an integer; the object keeps a Python int)
    assert type(HardwareConfig(key_lanes=np.int64(2)).key_lanes) is int
