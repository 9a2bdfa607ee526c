"""Models from Hugging Face config.json files and the shipped presets; model-level estimates."""

import dataclasses
import json
import math
import re
import subprocess
import sys

import pytest

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.sim.estimate import estimate_model
from swatkit.sim.model_configs import PRESETS, LayerPattern, ModelError, load_model

FULL = LayerPattern("full", causal=True)


@pytest.mark.parametrize(("name", "layers", "heads", "kv", "d", "patterns"), [
    ("longformer-base", 12, 12, 12, 64, (LayerPattern("window", 256, 256),) * 12),
    ("longformer-large", 24, 16, 16, 64, (LayerPattern("window", 256, 256),) * 24),
    ("bigbird-roberta-base", 12, 12, 12, 64, (LayerPattern("blocksparse", block_size=64,
                                                           random_blocks=3, pattern_seed=0),) * 12),
    ("mistral-7b", 32, 32, 8, 128, (LayerPattern("window", 4095, 0),) * 32),
    # sliding window 128 on the even layers, full causal attention on the odd ones
    ("gpt-oss-20b", 24, 64, 8, 64, (LayerPattern("window", 127, 0), FULL) * 12),
    # 5 sliding layers (window 512) per full one; 26 layers: the last two slide
    ("gemma-3-1b", 26, 4, 1, 256, ((LayerPattern("window", 511, 0),) * 5 + (FULL,)) * 4
     + (LayerPattern("window", 511, 0),) * 2),
])
def test_presets_have_the_published_values(name, layers, heads, kv, d, patterns):
    m = load_model(name)
    assert (m.layers, m.heads, m.kv_heads, m.head_dim) == (layers, heads, kv, d)
    assert m.patterns == patterns
    url, paper = m.source.split("; ", 1)   # the config.json's address and the paper
    assert url.startswith("https://huggingface.co/") and url.endswith("/config.json") and paper
    assert m.warnings == ()
    assert m.learned_sinks == (name == "gpt-oss-20b")   # GPT-OSS: one sink logit per head


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_read_as_transformers_reads_them(tmp_path, name):
    # each shipped preset (its config.json fields) through transformers' own config class
    from importlib import resources

    data = json.loads(resources.files("swatkit.sim").joinpath(f"presets/{name}.json")
                      .read_text())
    assert set(data["_swatkit_preset"]) == {"name", "config_json", "paper", "note"}
    assert data["_swatkit_preset"]["name"] == name
    if data["model_type"] not in ("longformer", "big_bird"):   # (no layer types to derive)
        del data["_swatkit_preset"]
        assert swatkit_reading(load_model(name)) == transformers_reading(data)


def test_presets_follow_the_window_rules_of_the_spec():
    # Longformer's attention_window 512 and Mistral's sliding_window 4096, as AttentionSpec has them
    lf = load_model("longformer-base").patterns[0].spec(8192, 64)
    assert lf == AttentionSpec.longformer(8192, 64, attention_window=512)
    mi = load_model("mistral-7b").patterns[0].spec(8192, 128)
    assert mi == AttentionSpec.causal(8192, 128, sliding_window=4096)
    bb = load_model("bigbird-roberta-base")   # BigBird's whole pattern, as --bigbird has it
    assert bb.patterns[0].spec(4096, 64) == AttentionSpec.bigbird(4096, 64, 64, 3)
    assert bb.note == ""
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
     "{p}: num_attention_heads must be an integer in 1..65536 (a bound far above any published "
     "model), not 0"),
    ({"model_type": "mistral", "num_hidden_layers": 1, "num_attention_heads": 32,
      "num_key_value_heads": 5, "hidden_size": 4096, "sliding_window": 8},
     "{p}: num_key_value_heads (5) must divide num_attention_heads (32)"),
    ({"model_type": "gpt2", "num_hidden_layers": 1, "num_attention_heads": 12,
      "hidden_size": 768},
     "{p}: model_type 'gpt2' has no sliding-window attention (swatkit reads longformer, "
     "big_bird, mistral, mixtral, ministral, gemma2, gemma3_text, qwen2, qwen3, gpt_oss, "
     "cohere2, olmo3, and configs with sliding_window or layer_types)"),
    # wrong JSON types are refused, never coerced (a string "false" is not false)
    ({"model_type": "qwen2", "num_hidden_layers": 4, "num_attention_heads": 8,
      "hidden_size": 512, "use_sliding_window": "false", "sliding_window": 64},
     "{p}: use_sliding_window must be true or false, not 'false'"),
    ({"model_type": "qwen2", "num_hidden_layers": 4, "use_sliding_window": None},
     "{p}: use_sliding_window must be true or false, not None"),
    ({"model_type": "mistral", "sliding_window": "4096"},
     "{p}: sliding_window must be null or an integer, not '4096'"),
    ({"model_type": "qwen2", "use_sliding_window": True, "max_window_layers": -1},
     "{p}: max_window_layers must be a non-negative integer, not -1"),
    ({"model_type": "qwen3", "use_sliding_window": True, "max_window_layers": 2.0},
     "{p}: max_window_layers must be an integer, not 2.0"),
    ({"model_type": "gemma2", "attn_logit_softcapping": "50"},
     "{p}: attn_logit_softcapping must be a positive number or null, not '50'"),
    ({"model_type": "gemma2", "num_hidden_layers": True},
     "{p}: num_hidden_layers must be an integer, not True"),
    ({"model_type": "gemma2", "use_bidirectional_attention": True},
     "{p}: use_bidirectional_attention must be false or null for model_type 'gemma2' "
     "(swatkit reads bidirectional sliding layers of gemma3_text only), not True"),
    ({"model_type": "gemma3", "text_config": {"sliding_window_pattern": 0}},
     "{p}: text_config.sliding_window_pattern must be a positive integer, not 0"),
    ({"model_type": "gemma3", "text_config": {"use_bidirectional_attention": 1}},
     "{p}: text_config.use_bidirectional_attention must be true or false, not 1"),
    ({"model_type": "gemma3", "text_config": [1]},
     "{p}: text_config must be a JSON object, not [1]"),
    ({"model_type": "llava", "text_config": {"num_hidden_layers": 2}},
     "{p} lacks 'text_config.model_type'"),
    ({"model_type": "llava", "text_config": {"model_type": "mistral", "num_hidden_layers": 2,
                                             "num_attention_heads": 6, "num_key_value_heads": 4}},
     "{p}: text_config.num_key_value_heads (4) must divide text_config.num_attention_heads (6)"),
    ({"model_type": "olmo3", "num_hidden_layers": 2, "layer_types": ["sliding_attention", 3]},
     "{p}: layer_types[1] must be 'sliding_attention' or 'full_attention', not 3"),
    ({"model_type": "gpt_oss", "num_hidden_layers": 2, "sliding_window": None},
     "{p}: layer 0 is sliding_attention but sliding_window is not set"),
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
                       r"mistral-7b, gpt-oss-20b, gemma-3-1b\) and no such file or folder$"):
        load_model("gpt-5")
    with pytest.raises(ModelError, match=r"^no config\.json in "):
        load_model(str(tmp_path))
    assert len(PRESETS) == 6


def test_a_file_too_large_for_a_config_is_not_read_whole(tmp_path):
    big = tmp_path / "config.json"
    with big.open("wb") as f:   # (sparse: 16 MiB + 1 byte without writing them)
        f.truncate(16 * 2 ** 20 + 1)
    with pytest.raises(ModelError, match=f"^{re.escape(str(big))} is larger than 16,777,216 "
                                         f"bytes$"):
        load_model(str(tmp_path))
    big.write_text(json.dumps(MIXED) + " " * (16 * 2 ** 20 - len(json.dumps(MIXED))))
    assert load_model(str(big)).layers == 4   # 16 MiB exactly is read


def test_sizes_beyond_any_model_are_refused_at_once(tmp_path):
    # (10^12 layers built a list per layer until memory ran out)
    with pytest.raises(ModelError, match=r"^.*config\.json: num_hidden_layers must be an integer "
                       r"in 1..10000 \(a bound far above any published model\), "
                       r"not 1000000000000$"):
        load_model(str(write(tmp_path, {**MIXED, "num_hidden_layers": 10 ** 12})))
    with pytest.raises(ModelError, match=r"^.*config\.json: num_attention_heads must be an integer "
                       r"in 1..65536 \(a bound far above any published model\), not 1048576$"):
        load_model(str(write(tmp_path, {**MIXED, "num_attention_heads": 2 ** 20})))


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
    assert layers[1]["layer_pattern"] == "attention_window 8, dilation 2"
    spec = AttentionSpec(64, 32, 4, 4, 2)
    assert layers[1]["qk_macs"] == 2 * spec.pair_count() * 32   # two heads
    assert layers[1]["pairs"] == 2 * spec.pair_count()


def test_head_schedules_and_cores():
    m = load_model("mistral-7b")
    kw = {"fmt": NumberFormat(), "key_lanes": 8, "dim_lanes": 8}
    serial = {r["dataflow"]: r for r in estimate_model(m, [2048], ["swat", "flash"],
                                                        head_schedule="serial", **kw)
              if r["scope"] == "model"}
    gqa = {r["dataflow"]: r for r in estimate_model(m, [2048], ["swat", "flash"],
                                                     head_schedule="gqa", head_engines=4, **kw)
           if r["scope"] == "model"}
    # gqa on 4 engines: 4 query heads against one K/V pass (4x the query lanes): a quarter of
    # the cycles, the same MACs, K/V read from off-chip and from the buffers once per group
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
    # one query head per K/V head: the default is serial, and gqa is the same
    gqa = estimate_model(lf, [4096], ["swat"], head_schedule="gqa", **kw)[-1]
    assert {k: v for k, v in gqa.items() if k != "head_schedule"} == {
        k: v for k, v in one.items() if k != "head_schedule"}


def model_records(m, n, dataflows, scope="layer", **kw):
    return [r for r in estimate_model(m, [n], dataflows, fmt=NumberFormat(), **kw)
            if r["scope"] == scope]


@pytest.mark.parametrize(("name", "n", "bw"), [("gpt-oss-20b", 4096, 0.5),
                                              ("mistral-7b", 8192, 0.02)])
def test_gqa_fetches_each_kv_row_once_per_group(name, n, bw):
    # the default schedule of a GQA model: each K/V row from off-chip once for its g query
    # heads (input-stationary ring shared by the group); serial and the baselines re-read it per
    # query head
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.cycle_model import swat_cycles

    m = load_model(name)
    g, d = m.group, m.head_dim
    p = CoreParams(m.patterns[0].spec(n, d), NumberFormat(), HardwareConfig(8, 8, n))
    kv = m.kv_heads * 2 * n * d          # one layer's K and V, 8-bit elements
    gqa = model_records(m, n, ["swat", "blocksparse"])
    serial = model_records(m, n, ["swat"], head_schedule="serial")
    assert all(r["head_schedule"] == "gqa" and r["head_engines"] == 1 for r in gqa)
    swat, base = [r for r in gqa if not r["full_attention"]]
    assert swat["offchip_kv_read_bytes"] == kv and swat["kv_fetches"] == 1
    assert serial[0]["offchip_kv_read_bytes"] == g * kv and serial[0]["kv_fetches"] == g
    assert base["kv_fetches"] > g   # per query head and per query tile
    # Q and O per query head, K/V per group (and GPT-OSS's sink scores, one per query head)
    sinks = m.heads * math.ceil(p.widths.score / 8) if m.learned_sinks else 0
    assert swat["offchip_bytes"] == m.kv_heads * (2 * g + 2) * n * d + sinks
    assert serial[0]["offchip_bytes"] == m.heads * 4 * n * d + sinks
    # at the default 16 B/cycle both are compute-bound: per head, the g heads take g runs of
    # the one-head core; per group, one run of the grouped core (its exact cycle model: the
    # pipeline fills and drains once per group)
    grouped = dataclasses.replace(p, heads=g, kv_heads=1)
    assert serial[0]["cycles"] == m.heads * swat_cycles(p, n).cycles
    assert swat["cycles"] == m.kv_heads * swat_cycles(grouped, n).cycles < serial[0]["cycles"]
    # bandwidth-bound: the group's cycles are its transfers, fewer than per head
    slow = model_records(m, n, ["swat"], offchip_bytes_per_cycle=bw)[0]
    slow_serial = model_records(m, n, ["swat"], head_schedule="serial",
                                offchip_bytes_per_cycle=bw)[0]
    assert slow["cycles"] == m.kv_heads * math.ceil(slow["offchip_bytes"] / m.kv_heads / bw)
    assert slow["cycles"] > swat["cycles"]
    assert slow_serial["cycles"] / slow["cycles"] == pytest.approx(4 * g / (2 * g + 2),
                                                                   rel=1e-3)
    # g engines side by side: the same traffic, one head's run per group (1/g of the per-head
    # schedule's cycles), g times the MAC budget
    wide = model_records(m, n, ["swat"], head_engines=g)[0]
    assert wide["offchip_kv_read_bytes"] == kv and wide["cycles"] * g == serial[0]["cycles"]
    assert wide["kv_buffer_read_bits"] * g == swat["kv_buffer_read_bits"]


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"head_engines": 3}, ValueError,
     "head_engines must divide the query heads per K/V head (8), not 3"),
    ({"head_engines": 2, "head_schedule": "serial"}, ValueError,
     "head_engines must be 1 under head_schedule serial (the engines of a K/V group are "
     "gqa's), not 2"),
    ({"head_engines": 0}, ValueError, "head_engines must be a positive integer, not 0"),
    ({"head_engines": 2.0}, TypeError, "head_engines must be an integer, not 2.0"),
])
def test_bad_head_engines(kw, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        estimate_model(load_model("gpt-oss-20b"), [1024], ["swat"], fmt=NumberFormat(), **kw)


def test_learned_sinks_are_counted_in_every_dataflow():
    # GPT-OSS: per row and query head one compare, one exp, one add, and each head's sink
    # score (a score-width integer) read once; no MAC, no cycles on SWAT
    import dataclasses

    m = load_model("gpt-oss-20b")
    n = 2048
    flows = ["swat", "dense", "flash", "blocksparse"]
    with_sinks = model_records(m, n, flows)
    without = model_records(dataclasses.replace(m, learned_sinks=False), n, flows)
    score_bytes = math.ceil(NumberFormat().widths(64, 128).score / 8)
    for a, b in zip(with_sinks, without, strict=True):
        for key in ("exp_ops", "max_compares", "sum_adds"):
            assert a[key] - b[key] == m.heads * n
        assert a["offchip_read_bytes"] - b["offchip_read_bytes"] == m.heads * score_bytes
        assert a["macs"] == b["macs"] and a["learned_sinks"] and not b["learned_sinks"]
        assert a["energy_j"] > b["energy_j"]
        if a["computed_as"] == "swat":
            assert a["cycles"] == b["cycles"]


def test_cores_share_the_bandwidth():
    m = load_model("longformer-base")
    kw = {"fmt": NumberFormat(), "key_lanes": 8, "dim_lanes": 8, "offchip_bytes_per_cycle": 0.05}
    one = estimate_model(m, [1024], ["swat"], **kw)[-1]
    four = estimate_model(m, [1024], ["swat"], cores=4, **kw)[-1]
    # bandwidth-bound: four cores are no faster than one
    assert one["cycles"] == pytest.approx(one["offchip_bytes"] / 0.05, rel=1e-3)
    assert four["cycles"] >= one["cycles"]


# -- Hugging Face configs as transformers reads them ---------------------------------------------

ALT = ["sliding_attention", "full_attention"]

# Configs shaped like the published config.json files (their attention fields; the families'
# other fields omitted), and variants that leave fields to the config classes' defaults.
HF_CONFIGS = {
    "gemma2-9b": {"model_type": "gemma2", "num_hidden_layers": 42, "num_attention_heads": 16,
                  "num_key_value_heads": 8, "head_dim": 256, "hidden_size": 3584,
                  "sliding_window": 4096, "attn_logit_softcapping": 50.0,
                  "max_position_embeddings": 8192},
    "gemma2-defaults": {"model_type": "gemma2"},
    "gemma3-4b-composite": {"model_type": "gemma3", "text_config": {
        "model_type": "gemma3_text", "hidden_size": 2560, "num_hidden_layers": 34,
        "sliding_window": 1024}},
    "gemma3-text-no-model-type": {"model_type": "gemma3", "text_config": {
        "num_hidden_layers": 8, "sliding_window": 512}},
    "gemma3-1b": {"model_type": "gemma3_text", "num_hidden_layers": 26, "num_attention_heads": 4,
                  "num_key_value_heads": 1, "head_dim": 256, "hidden_size": 1152,
                  "sliding_window": 512, "sliding_window_pattern": 6,
                  "attn_logit_softcapping": None, "max_position_embeddings": 32768},
    "gemma3-pattern-3": {"model_type": "gemma3_text", "num_hidden_layers": 7,
                         "sliding_window_pattern": 3, "sliding_window": 256},
    "gemma3-bidirectional": {"model_type": "gemma3_text", "num_hidden_layers": 6,
                             "num_attention_heads": 3, "num_key_value_heads": 1,
                             "sliding_window": 512, "use_bidirectional_attention": True},
    "qwen2.5-7b": {"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28,
                   "num_key_value_heads": 4, "num_hidden_layers": 28, "max_window_layers": 28,
                   "sliding_window": 131072, "use_sliding_window": False},
    "qwen2-sliding-upper": {"model_type": "qwen2", "hidden_size": 3584,
                            "num_attention_heads": 28, "num_key_value_heads": 4,
                            "num_hidden_layers": 28, "max_window_layers": 21,
                            "sliding_window": 4096, "use_sliding_window": True},
    "qwen2-default-max-window": {"model_type": "qwen2", "num_hidden_layers": 30,
                                 "use_sliding_window": True},
    "qwen2-layer-types": {"model_type": "qwen2", "num_hidden_layers": 4, "use_sliding_window": True,
                          "layer_types": ALT * 2},
    "qwen3-8b": {"model_type": "qwen3", "hidden_size": 4096, "head_dim": 128,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 36,
                 "max_window_layers": 36, "sliding_window": None, "use_sliding_window": False},
    "qwen3-sliding": {"model_type": "qwen3", "num_hidden_layers": 8, "max_window_layers": 0,
                      "sliding_window": 2048, "use_sliding_window": True},
    "gpt-oss-20b": {"model_type": "gpt_oss", "num_hidden_layers": 24, "num_attention_heads": 64,
                    "num_key_value_heads": 8, "head_dim": 64, "hidden_size": 2880,
                    "sliding_window": 128, "max_position_embeddings": 131072,
                    "layer_types": ALT * 12},
    "gpt-oss-derived": {"model_type": "gpt_oss", "num_hidden_layers": 36},
    "mistral-7b-v0.1": {"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32,
                        "num_key_value_heads": 8, "num_hidden_layers": 32,
                        "sliding_window": 4096},
    "mistral-7b-v0.3": {"model_type": "mistral", "num_hidden_layers": 32, "sliding_window": None},
    "mixtral-window": {"model_type": "mixtral", "num_hidden_layers": 4, "sliding_window": 4096},
    "ministral": {"model_type": "ministral", "num_hidden_layers": 4, "sliding_window": 32768,
                  "layer_types": ["sliding_attention"] * 3 + ["full_attention"]},
    "mistral3-composite": {"model_type": "mistral3", "text_config": {
        "model_type": "mistral", "num_hidden_layers": 6, "sliding_window": 1024}},
    "command-r7b": {"model_type": "cohere2", "hidden_size": 4096, "num_attention_heads": 32,
                    "num_key_value_heads": 8, "num_hidden_layers": 32, "sliding_window": 4096,
                    "sliding_window_pattern": 4},
    "cohere2-pattern-3": {"model_type": "cohere2", "num_hidden_layers": 9,
                          "sliding_window_pattern": 3, "head_dim": 64},
    "olmo3-7b": {"model_type": "olmo3", "hidden_size": 4096, "num_attention_heads": 32,
                 "num_key_value_heads": 32, "num_hidden_layers": 32, "sliding_window": 4096,
                 "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 8},
    "olmo3-derived": {"model_type": "olmo3", "num_hidden_layers": 10, "sliding_window": 1024},
}


def transformers_reading(data: dict) -> dict:
    """What transformers' own config classes make of ``data``: per-layer attention kinds,
    sliding window, heads and head_dim of the (text) config object."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install -e '.[hf]')")
    import dataclasses
    import importlib.util
    from pathlib import Path

    text = transformers.AutoConfig.for_model(**data).get_text_config()
    layers = text.num_hidden_layers
    if "layer_types" in {f.name for f in dataclasses.fields(type(text))}:
        types = list(text.layer_types)
    else:
        # Mistral's and Mixtral's classes have no layer_types: their models build one mask from
        # sliding_window for every layer (and the modeling code never reads layer_types)
        modeling = importlib.util.find_spec(
            f"transformers.models.{text.model_type}.modeling_{text.model_type}").origin
        assert "layer_types" not in Path(modeling).read_text()
        types = [ALT[text.sliding_window is None]] * layers
    return {"layers": layers, "heads": text.num_attention_heads,
            "kv_heads": text.num_key_value_heads or text.num_attention_heads,
            "head_dim": (getattr(text, "head_dim", None)
                         or text.hidden_size // text.num_attention_heads),
            "layer_types": types, "sliding_window": text.sliding_window,
            "bidirectional": bool(getattr(text, "use_bidirectional_attention", False))}


def swatkit_reading(m) -> dict:
    """The same of swatkit's :class:`ModelConfig`, in transformers' terms: a causal sliding
    layer's window W is its W − 1 keys before the row plus the row; a bidirectional one (Gemma-3's
    ``use_bidirectional_attention``) sees keys with ``|i − j| < W`` (transformers' halved W)."""
    windows = {(p.before, p.after) for p in m.patterns if p.kind == "window"}
    assert len(windows) <= 1
    (before, after), = windows or {(None, None)}
    fulls = {p.causal for p in m.patterns if p.kind == "full"}
    bidirectional = (after is not None and after > 0) or fulls == {False}
    if bidirectional:
        assert before == after and fulls <= {False}
    return {"layers": m.layers, "heads": m.heads, "kv_heads": m.kv_heads, "head_dim": m.head_dim,
            "layer_types": [ALT[p.kind == "full"] for p in m.patterns],
            "sliding_window": None if before is None else before + 1,
            "bidirectional": bidirectional}


@pytest.mark.parametrize("name", list(HF_CONFIGS))
def test_configs_are_read_as_transformers_reads_them(tmp_path, name):
    data = HF_CONFIGS[name]
    hf = transformers_reading(data)
    mine = swatkit_reading(load_model(str(write(tmp_path, data))))
    if not any(t == "sliding_attention" for t in hf["layer_types"]):
        hf["sliding_window"] = None   # (a window no layer uses: Qwen2.5's 131072 with it off)
    assert mine == hf
    assert len(set(hf["layer_types"])) == 2 or name in (
        "gemma2-defaults", "qwen2.5-7b", "qwen3-8b", "qwen3-sliding", "mistral-7b-v0.1",
        "mistral-7b-v0.3", "mixtral-window", "mistral3-composite")


def test_hybrid_families_are_not_read_as_all_sliding(tmp_path):
    # the derived layer types, spelt out (what the comparison above checks against transformers)
    def kinds(name):
        return "".join("SF"[p.kind == "full"] for p in
                       load_model(str(write(tmp_path, HF_CONFIGS[name], name))).patterns)
    assert kinds("gemma2-9b") == "SF" * 21
    assert kinds("gemma3-4b-composite") == ("S" * 5 + "F") * 5 + "S" * 4
    assert kinds("gemma3-pattern-3") == "SSFSSFS"
    assert kinds("qwen2-sliding-upper") == "F" * 21 + "S" * 7
    assert kinds("qwen2.5-7b") == "F" * 28
    assert kinds("gpt-oss-derived") == "SF" * 18
    assert kinds("command-r7b") == "SSSF" * 8
    assert kinds("olmo3-derived") == "SSSFSSSFSS"
    assert kinds("mistral-7b-v0.3") == "F" * 32
    m = load_model(str(write(tmp_path, HF_CONFIGS["gemma3-4b-composite"], "g3")))
    assert (m.heads, m.kv_heads, m.head_dim) == (8, 4, 256)   # Gemma3TextConfig's defaults
    assert m.patterns[0] == LayerPattern("window", 1023, 0)
    bi = load_model(str(write(tmp_path, HF_CONFIGS["gemma3-bidirectional"], "bi")))
    assert bi.patterns[0] == LayerPattern("window", 256, 256)
    assert bi.patterns[5] == LayerPattern("full", causal=False)
    assert load_model(str(write(tmp_path, HF_CONFIGS["command-r7b"], "c"))).head_dim == 128
    gpt = load_model(str(write(tmp_path, HF_CONFIGS["gpt-oss-20b"], "gpt")))
    assert gpt.learned_sinks and gpt.note == ""   # (the estimate counts the sink term)


@pytest.mark.parametrize(("data", "message"), [
    ({"model_type": "gemma2", "num_hidden_layers": 2},
     "{p}: attn_logit_softcapping 50 is not modelled: the model caps every score at ±50 "
     "(c·tanh(s/c)) before the softmax, the core and the golden models do not, and the "
     "estimate counts no tanh"),
    ({"model_type": "gemma3", "text_config": {"num_hidden_layers": 2,
                                              "attn_logit_softcapping": 30}},
     "{p}: text_config.attn_logit_softcapping 30 is not modelled: the model caps every score "
     "at ±30 (c·tanh(s/c)) before the softmax, the core and the golden models do not, and the "
     "estimate counts no tanh"),
    ({"model_type": "mistral", "num_hidden_layers": 2, "layer_types": ALT},
     "{p}: layer_types is ignored, as transformers' mistral ignores it (every layer uses "
     "sliding_window)"),
    ({"model_type": "qwen2_moe", "num_hidden_layers": 2, "num_attention_heads": 2,
      "hidden_size": 64, "sliding_window": 16},
     "{p}: model_type 'qwen2_moe' is not a family swatkit knows (mistral, mixtral, ministral, "
     "gemma2, gemma3_text, qwen2, qwen3, gpt_oss, cohere2, olmo3): every layer is read as "
     "sliding_attention (window 16); give layer_types if its config class derives others"),
])
def test_what_is_not_modelled_is_said_in_one_line(tmp_path, data, message):
    path = write(tmp_path, data)
    assert load_model(str(path)).warnings == (message.format(p=path),)


def test_no_warning_where_everything_is_read(tmp_path):
    for name in ("gemma3-1b", "qwen2-sliding-upper", "gpt-oss-20b", "command-r7b", "olmo3-7b"):
        assert load_model(str(write(tmp_path, HF_CONFIGS[name], name))).warnings == ()
    # an unknown family that lists its layer types is read exactly, without a guess
    other = {"model_type": "qwen2_moe", "num_hidden_layers": 2, "num_attention_heads": 2,
             "hidden_size": 64, "sliding_window": 16, "layer_types": ALT}
    m = load_model(str(write(tmp_path, other, "other")))
    assert m.warnings == () and [p.kind for p in m.patterns] == ["window", "full"]


def test_wrong_json_types_are_refused_by_transformers_too():
    # swatkit refuses a string "false" (test_bad_configs); transformers' strict classes agree
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install -e '.[hf]')")
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises(StrictDataclassFieldValidationError,
                       match=r"(?s)field 'use_sliding_window'.*expected bool, got str"):
        transformers.AutoConfig.for_model(model_type="qwen2", use_sliding_window="false")


@pytest.mark.parametrize(("name", "n"), [("gemma2-9b", 8192), ("gpt-oss-20b", 32768)])
def test_full_layers_of_hybrids_run_at_their_own_context(tmp_path, name, n):
    # a full layer of N keys is past the core's Verilog limits (16,385 keys, a 32 Mibit ring) but
    # not past the estimate's: it is estimated as FlashAttention, causal, over all N keys
    m = load_model(str(write(tmp_path, HF_CONFIGS[name])))
    recs = estimate_model(m, [n], ["swat", "flash"], fmt=NumberFormat(), key_lanes=8,
                          dim_lanes=8)
    full = [r for r in recs if r["scope"] == "layer" and r["full_attention"]]
    assert {r["computed_as"] for r in full} == {"flash"} and len(full) == 2
    assert full[0]["pairs"] == m.heads * n * (n + 1) // 2     # causal: every earlier key
    assert full[0]["cycles"] == full[1]["cycles"]             # swat's full layer is flash's
    window = next(r for r in recs if r["scope"] == "layer" and r["dataflow"] == "swat"
                  and not r["full_attention"])
    w = m.patterns[0].before + 1
    assert window["pairs"] == m.heads * (w * (w + 1) // 2 + (n - w) * w)
    with pytest.raises(ModelError, match=r"^model .*, layer 0 \(causal sliding_window \d+\): "
                       r"max_seq_len must be at most 16777216 \(the practical limit of the "
                       r"core's row counters and of the cycle model\), not 33554432$"):
        estimate_model(m, [2 ** 25], ["flash"], fmt=NumberFormat())   # the estimate's own limit


def estimate_cli(*argv):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", "estimate", *argv],
                          capture_output=True, text=True)


def test_cli_refuses_a_wrong_type_in_one_line_and_warns_in_one(tmp_path):
    bad = write(tmp_path, {**HF_CONFIGS["qwen2-sliding-upper"], "use_sliding_window": "false"},
                "bad.json")
    done = estimate_cli("--model", str(bad), "--seq-len", "4096")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"swatkit: error: --model: {bad}: use_sliding_window must be true or "
                           f"false, not 'false'\n")
    gemma = write(tmp_path, HF_CONFIGS["gemma2-9b"], "gemma.json")
    done = estimate_cli("--model", str(gemma), "--seq-len", "8192", "--format", "json",
                        "--dataflow", "swat")
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"swatkit: warning: --model: {gemma}: attn_logit_softcapping 50 is "
                           f"not modelled: the model caps every score at ±50 (c·tanh(s/c)) "
                           f"before the softmax, the core and the golden models do not, and "
                           f"the estimate counts no tanh\n")
    layers = [r for r in json.loads(done.stdout) if r["scope"] == "layer"]
    assert [(r["layer_indices"][:2], r["computed_as"]) for r in layers] == [
        ([0, 2], "swat"), ([1, 3], "flash")]


def test_bigbird_model_is_the_whole_pattern_of_bigbird_heads():
    # --model bigbird-roberta-base: each layer is 12 heads of what --bigbird 64 estimates for
    # one head (window, global first and last blocks, 3 random blocks per query block)
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.estimate import estimate

    fmt = NumberFormat()
    recs = estimate_model(load_model("bigbird-roberta-base"), [4096], ["swat", "blocksparse"],
                          fmt=fmt)
    head = CoreParams(AttentionSpec.bigbird(4096, 64, 64, 3), fmt, HardwareConfig(8, 8, 4096))
    one = {r["dataflow"]: r for r in estimate(head, [4096], ["swat", "blocksparse"])}
    for rec in recs:
        single = one[rec["dataflow"]]
        times = 12 if rec["scope"] == "layer" else 144
        assert rec["cycles"] == times * single["cycles"]
        assert rec["macs"] == times * single["macs"]
        assert rec["pairs"] == times * single["pairs"]
        assert rec["energy_j"] == pytest.approx(times * single["energy_j"])
    layer = recs[0]
    assert (layer["block_size"], layer["random_blocks"], layer["global_tokens"]) == (64, 3, 128)
    # more than the window part alone: 2 global blocks and 3 random blocks per query block
    assert layer["pairs"] > 12 * 3 * 64 * 4096


def test_bigbird_model_against_a_token_band_flow(tmp_path):
    import dataclasses

    from swatkit.rtl import HardwareConfig

    spec = AttentionSpec.longformer(4096, 64, attention_window=512)
    flow = write(tmp_path, {"board": "ulx3s-85f", "fmax_mhz": {"clk": {"achieved": 80.0}},
                            "spec": dataclasses.asdict(spec),
                            "format": dataclasses.asdict(NumberFormat()),
                            "hardware": dataclasses.asdict(HardwareConfig(8, 8, 4096))},
                 "flow.json")
    done = estimate_cli("--from-flow", str(flow), "--model", "bigbird-roberta-base",
                        "--seq-len", "4096")
    assert (done.returncode, done.stderr) == (2, (
        f"swatkit: error: --from-flow: {flow} built attention_window 512, not BigBird "
        f"block_size 64, 3 random blocks (--model bigbird-roberta-base)\n"))
    done = estimate_cli("--from-flow", str(flow), "--model", "longformer-base", "--seq-len",
                        "4096", "--dataflow", "swat")
    assert done.returncode == 0, done.stderr
    for r, code in ((3, 0), (2, 2)):   # a BigBird core: accepted with the model's 3 blocks
        bb = AttentionSpec.bigbird(4096, 64, 64, r)
        flow = write(tmp_path, {"board": "ulx3s-85f", "fmax_mhz": {"clk": {"achieved": 80.0}},
                                "spec": dataclasses.asdict(bb),
                                "format": dataclasses.asdict(NumberFormat()),
                                "hardware": dataclasses.asdict(HardwareConfig(8, 8, 4096))},
                     f"flow{r}.json")
        done = estimate_cli("--from-flow", str(flow), "--model", "bigbird-roberta-base",
                            "--seq-len", "4096", "--dataflow", "swat")
        assert done.returncode == code, done.stderr
    assert done.stderr == (f"swatkit: error: --from-flow: {flow} built BigBird block_size 64, 2 "
                           f"random blocks, not BigBird block_size 64, 3 random blocks (--model "
                           f"bigbird-roberta-base)\n")


def test_explore_says_it_cannot_size_a_bigbird_core():
    # explore's resource model has no term for the global-row engines and random-block memories
    from swatkit.fpga_flows.explore import explore, load_calibration

    with pytest.raises(ModelError, match=r"^model bigbird-roberta-base: the resource model is "
                       r"calibrated on token-band cores, not on BigBird's block-sparse core "
                       r"\(its global-row engines and random-block memories\); `swatkit "
                       r"estimate --model` estimates it$"):
        explore(load_model("bigbird-roberta-base"), 4096, load_calibration("ulx3s-85f"))


def test_the_docs_hybrid_example_is_what_the_estimate_gives(tmp_path):
    # docs/estimation.md's Gemma-2 example: its config.json and its model total, recomputed
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "estimation.md").read_text()
    section = doc[doc.index("### A hybrid decoder from its config.json"):]
    config = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    shown = re.search(r"│ swat +│ 8192 │ model \(42\) +│ +([\d,]+) │", section)
    m = load_model(str(write(tmp_path, config, "gemma-2-9b.json")))
    assert [p.kind for p in m.patterns] == ["window", "full"] * 21
    total = next(r for r in estimate_model(m, [8192], ["swat"], fmt=NumberFormat())
                 if r["scope"] == "model")
    assert int(shown.group(1).replace(",", "")) == total["cycles"]


@pytest.mark.parametrize("section", ["### Grouped K/V heads: per group against per head",
                                     "### Sink tokens (StreamingLLM)"])
def test_the_docs_group_and_sink_figures_are_what_their_scripts_print(section):
    # docs/estimation.md shows each script (```py) and, in the next block, its output
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "estimation.md").read_text()
    text = doc[doc.index(section):]
    script, shown = re.search(r"```py\n(.*?)```\n\n```\n(.*?)```", text, re.S).groups()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


TINY = {"hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "intermediate_size": 32, "vocab_size": 64}


@pytest.mark.parametrize("data", [
    {"model_type": "gemma2", "num_hidden_layers": 2, "sliding_window": 4},
    {"model_type": "gemma3_text", "num_hidden_layers": 3, "sliding_window": 4,
     "sliding_window_pattern": 3},
    {"model_type": "gemma3_text", "num_hidden_layers": 3, "sliding_window": 6,
     "sliding_window_pattern": 3, "use_bidirectional_attention": True},
    {"model_type": "qwen2", "num_hidden_layers": 2, "sliding_window": 4,
     "use_sliding_window": True, "max_window_layers": 1},
    {"model_type": "gpt_oss", "num_hidden_layers": 2, "sliding_window": 4,
     "num_local_experts": 2, "num_experts_per_tok": 1, "experts_implementation": "eager"},
    {"model_type": "mistral", "num_hidden_layers": 1, "sliding_window": 4},
    {"model_type": "cohere2", "num_hidden_layers": 4, "sliding_window": 4},
    {"model_type": "olmo3", "num_hidden_layers": 4, "sliding_window": 4},
], ids=lambda d: d["model_type"] + ("-bidirectional" if "use_bidirectional_attention" in d
                                    else ""))
def test_each_layer_attends_the_keys_the_transformers_model_attends(tmp_path, data):
    # a tiny model of the family with random weights, run eagerly: the keys each query row gives
    # a non-zero weight in each layer are the keys of swatkit's pattern for that layer
    torch = pytest.importorskip("torch", reason="torch is not installed (optional: this test "
                                                "runs transformers' models; the hf extra has "
                                                "only their config classes)")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    data, n = {**TINY, **data}, 12
    config = transformers.AutoConfig.for_model(**data)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="eager").double().eval()
    with torch.no_grad():
        out = model(torch.arange(1, n + 1)[None], output_attentions=True)
    m = load_model(str(write(tmp_path, data)))
    assert len(out.attentions) == m.layers
    masks = [p.spec(n, m.head_dim).mask() for p in m.patterns]
    for weights, mask in zip(out.attentions, masks, strict=True):
        assert ((weights[0] > 0).numpy() == mask[None]).all()
    assert any((a != b).any() for a in masks for b in masks) or data["model_type"] == "mistral"
