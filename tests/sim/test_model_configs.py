"""Models from Hugging Face config.json files and the shipped presets; model-level estimates."""

import json
import re

import pytest

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.sim.estimate import estimate_model
from swatkit.sim.models import PRESETS, LayerPattern, ModelError, load_model


@pytest.mark.parametrize(("name", "layers", "heads", "kv", "d", "pattern"), [
    ("longformer-base", 12, 12, 12, 64, LayerPattern("window", 256, 256)),
    ("longformer-large", 24, 16, 16, 64, LayerPattern("window", 256, 256)),
    ("bigbird-roberta-base", 12, 12, 12, 64, LayerPattern("window", 96, 95)),
    ("mistral-7b", 32, 32, 8, 128, LayerPattern("window", 4095, 0)),
])
def test_presets_have_the_published_values(name, layers, heads, kv, d, pattern):
    m = load_model(name)
    assert (m.layers, m.heads, m.kv_heads, m.head_dim) == (layers, heads, kv, d)
    assert m.patterns == (pattern,) * layers
    assert "huggingface.co" in m.source


def test_presets_follow_the_window_rules_of_the_spec():
    # Longformer's attention_window 512 and Mistral's sliding_window 4096, as AttentionSpec has them
    lf = load_model("longformer-base").patterns[0].spec(8192, 64)
    assert lf == AttentionSpec.longformer(8192, 64, attention_window=512)
    mi = load_model("mistral-7b").patterns[0].spec(8192, 128)
    assert mi == AttentionSpec.causal(8192, 128, sliding_window=4096)
    bb = load_model("bigbird-roberta-base")
    assert bb.patterns[0].spec(4096, 64).window == 3 * 64   # BigBird's window keys per row
    assert "random blocks" in bb.note and "global blocks" in bb.note
    assert load_model("longformer-base").group == 1 and load_model("mistral-7b").group == 4


def write(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


MIXED = {"model_type": "gemma2", "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 32, "hidden_size": 512, "sliding_window": 64,
         "layer_types": ["sliding_attention", "full_attention"] * 2}


def test_config_folder_and_layer_types(tmp_path):
    write(tmp_path, MIXED)
    m = load_model(str(tmp_path))   # the folder
    assert [p.kind for p in m.patterns] == ["window", "full"] * 2
    assert m.layer_groups() == [(LayerPattern("window", 63, 0), [0, 2]),
                                (LayerPattern("full", causal=True), [1, 3])]


def test_full_layers_are_estimated_with_the_flash_model_and_marked(tmp_path):
    m = load_model(str(write(tmp_path, MIXED)))
    recs = estimate_model(m, [512], ["swat", "blocksparse", "flash"], fmt=NumberFormat(),
                          key_lanes=4, dim_lanes=8)
    by = {(r["dataflow"], r["scope"], tuple(r["layer_indices"])): r for r in recs}
    full = by["swat", "layer", (1, 3)]
    assert full["full_attention"] and full["computed_as"] == "flash"
    flash_full = by["flash", "layer", (1, 3)]
    assert full["cycles"] == flash_full["cycles"] and full["energy_j"] == flash_full["energy_j"]
    window = by["swat", "layer", (0, 2)]
    assert not window["full_attention"] and window["computed_as"] == "swat"
    total = by["swat", "model", (0, 1, 2, 3)]
    assert total["cycles"] == 2 * full["cycles"] + 2 * window["cycles"]
    assert total["energy_j"] == pytest.approx(2 * full["energy_j"] + 2 * window["energy_j"])
    assert total["qk_macs"] == 2 * full["qk_macs"] + 2 * window["qk_macs"]
    for k, v in total["energy_breakdown"].items():
        assert v == pytest.approx(2 * full["energy_breakdown"][k]
                                  + 2 * window["energy_breakdown"][k]), k


@pytest.mark.parametrize(("data", "message"), [
    ("{", "{p} is not valid JSON: Expecting property name enclosed in double quotes: "
          "line 1 column 2 (char 1)"),
    ("[1]", "{p}: a config.json holds a JSON object, not list"),
    ({"model_type": "longformer", "num_attention_heads": 12, "hidden_size": 768,
      "attention_window": 512}, "{p} lacks 'num_hidden_layers'"),
    ({"num_hidden_layers": 2}, "{p} lacks 'model_type'"),
    ({"model_type": "longformer", "num_hidden_layers": 2, "num_attention_heads": 12,
      "hidden_size": 768}, "{p} lacks 'attention_window'"),
    ({"model_type": "longformer", "num_hidden_layers": 2, "num_attention_heads": 12,
      "hidden_size": 768, "attention_window": [512]},
     "{p}: attention_window has 1 entries for 2 layers"),
    ({"model_type": "longformer", "num_hidden_layers": 1, "num_attention_heads": 12,
      "hidden_size": 768, "attention_window": 511},
     "{p}: attention_window of layer 0 must be a positive even integer, not 511"),
    ({"model_type": "mistral", "num_hidden_layers": 1, "num_attention_heads": 0,
      "hidden_size": 768, "sliding_window": 8},
     "{p}: num_attention_heads must be a positive integer, not 0"),
    ({"model_type": "mistral", "num_hidden_layers": 1, "num_attention_heads": 32,
      "num_key_value_heads": 5, "hidden_size": 4096, "sliding_window": 8},
     "{p}: num_key_value_heads (5) must divide num_attention_heads (32)"),
    ({"model_type": "gpt2", "num_hidden_layers": 1, "num_attention_heads": 12,
      "hidden_size": 768},
     "{p}: model_type 'gpt2' has no sliding-window attention (swatkit reads longformer, "
     "big_bird, and configs with sliding_window or layer_types)"),
    ({"model_type": "gemma2", "num_hidden_layers": 2, "num_attention_heads": 8, "head_dim": 32,
      "sliding_window": 64, "layer_types": ["sliding_attention", "local"]},
     "{p}: layer_types[1] must be 'sliding_attention' or 'full_attention', not 'local'"),
])
def test_bad_configs(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ModelError, match="^" + re.escape(message.format(p=path))
                       + "$"):
        load_model(str(path))


def test_unknown_preset_and_missing_folder(tmp_path):
    with pytest.raises(ModelError, match=r"^unknown model 'gpt-5': not a preset "
                       r"\(longformer-base, longformer-large, bigbird-roberta-base, "
                       r"mistral-7b\) and no such file or folder$"):
        load_model("gpt-5")
    with pytest.raises(ModelError, match=r"^no config\.json in "):
        load_model(str(tmp_path))
    assert len(PRESETS) == 4


def test_patterns_the_core_cannot_run(tmp_path):
    full = {**MIXED, "layer_types": ["full_attention"] * 4}
    with pytest.raises(ModelError, match=r"^model .*config\.json: no layer has a sliding window "
                       r"\(all 4 are full attention\); the SWAT core runs sliding-window layers "
                       r"only$"):
        estimate_model(load_model(str(write(tmp_path, full))), [256], fmt=NumberFormat())


def test_dilated_layers_are_estimated(tmp_path):
    # the core runs dilation (issue 13): a layer with attention_dilation 2 is its own group,
    # its core has max_dilation 2 and its SWAT actions are the core's counters
    dilated = {"model_type": "longformer", "num_hidden_layers": 2, "num_attention_heads": 2,
               "hidden_size": 64, "attention_window": 8, "attention_dilation": [1, 2]}
    recs = estimate_model(load_model(str(write(tmp_path, dilated, "d.json"))), [64], ["swat"],
                          fmt=NumberFormat(), key_lanes=1, dim_lanes=1)
    layers = [r for r in recs if r["scope"] == "layer"]
    assert [(r["layer_indices"], r["dilation"], r["max_dilation"]) for r in layers] == [
        ([0], 1, 1), ([1], 2, 2)]
    assert layers[1]["layer_pattern"] == "bidirectional window 4+1+4, dilation 2"
    spec = AttentionSpec(64, 32, 4, 4, 2)
    assert layers[1]["qk_macs"] == 2 * spec.pair_count() * 32   # two heads
    assert layers[1]["pairs"] == 2 * spec.pair_count()


def test_head_schedules_and_cores():
    m = load_model("mistral-7b")
    kw = {"fmt": NumberFormat(), "key_lanes": 8, "dim_lanes": 8}
    serial = {r["dataflow"]: r for r in estimate_model(m, [2048], ["swat", "flash"], **kw)
              if r["scope"] == "model"}
    gqa = {r["dataflow"]: r for r in estimate_model(m, [2048], ["swat", "flash"],
                                                     head_schedule="gqa", **kw)
           if r["scope"] == "model"}
    # gqa: 4 query heads against one K/V pass (4x the query lanes): a quarter of the cycles,
    # the same MACs, K/V read from off-chip and from the buffers once per group
    assert gqa["swat"]["cycles"] * 4 == serial["swat"]["cycles"]
    assert gqa["swat"]["macs"] == serial["swat"]["macs"]
    n, d = 2048, 128
    assert serial["swat"]["offchip_read_bytes"] == 32 * 32 * 3 * n * d
    assert gqa["swat"]["offchip_read_bytes"] == 32 * 8 * (4 + 2) * n * d
    assert gqa["swat"]["kv_buffer_read_bits"] * 4 == serial["swat"]["kv_buffer_read_bits"]
    assert gqa["swat"]["energy_j"] < serial["swat"]["energy_j"]
    # the baseline gets the same MAC budget (4 slots)
    assert gqa["flash"]["cycles"] * 4 == serial["flash"]["cycles"]
    lf = load_model("longformer-base")
    two = estimate_model(lf, [4096], ["swat"], cores=2, **kw)[-1]
    one = estimate_model(lf, [4096], ["swat"], **kw)[-1]
    assert two["cycles"] * 2 == one["cycles"]   # 12 heads on 2 cores, compute-bound
    assert two["energy_j"] == pytest.approx(one["energy_j"])
    assert (two["cores"], two["head_schedule"], two["heads"], two["kv_heads"], two["layers"],
            two["model"]) == (2, "serial", 12, 12, 12, "longformer-base")


def test_cores_share_the_bandwidth():
    m = load_model("longformer-base")
    kw = {"fmt": NumberFormat(), "key_lanes": 8, "dim_lanes": 8, "offchip_bytes_per_cycle": 0.05}
    one = estimate_model(m, [1024], ["swat"], **kw)[-1]
    four = estimate_model(m, [1024], ["swat"], cores=4, **kw)[-1]
    # bandwidth-bound: four cores are no faster than one
    assert one["cycles"] == pytest.approx(one["offchip_bytes"] / 0.05, rel=1e-3)
    assert four["cycles"] >= one["cycles"]
