"""The float models against Hugging Face's own attention layers, in float64.

Tiny models are built from configs with random weights (no downloads), run in eager float64,
and the q, k, v (after RoPE, before ``repeat_kv``), the sinks and the attention output of every
layer are captured by wrapping the modeling module's ``eager_attention_forward``. The golden
``window_attention`` (and ``attention_reference``) must reproduce each output from those inputs:

* GPT-OSS: grouped heads, a sliding layer (window 5) and a full layer, learned sinks;
* Mistral and Gemma 3: grouped heads on causal sliding windows (their softmax runs in float32,
  so agreement is ~1e-7, not ~1e-16);
* StreamingLLM: a causal window plus the first 4 tokens, through Mistral's eager attention with a
  mask built here from StreamingLLM's definition.

Needs torch and transformers (the ``hf`` extra, which pins the CPU torch 2.13.0); skipped without.
"""

import importlib

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, attention_reference, window_attention

# torch and transformers are imported when the module's first test runs, not at collection
# (several seconds in every worker), and one worker runs the Hugging Face tests
pytestmark = pytest.mark.xdist_group("hugging-face")
torch = transformers = None


@pytest.fixture(scope="module", autouse=True)
def hugging_face():
    global torch, transformers
    torch = pytest.importorskip("torch",
                                reason="needs torch (a CPU build) for Hugging Face layers")
    transformers = pytest.importorskip("transformers",
                                       reason="needs transformers (the hf extra)")

N = 23          # rows: several windows long
WINDOW = 5


def run_captured(family: str, model, n: int = N, seed: int = 0):
    """Run ``model`` on random token ids; return, per attention call, its module, q, k, v
    (numpy, batch dropped) and output ``(heads, N, d)``."""
    mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    original = mod.eager_attention_forward
    calls = []

    def wrapped(module, query, key, value, *args, **kwargs):
        out = original(module, query, key, value, *args, **kwargs)
        calls.append((module, *(x[0].detach().numpy() for x in (query, key, value)),
                      kwargs["scaling"], out[0][0].transpose(0, 1).detach().numpy()))
        return out

    mod.eager_attention_forward = wrapped
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            model(input_ids=torch.randint(0, model.config.vocab_size, (1, n)))
    finally:
        mod.eager_attention_forward = original
    assert calls, f"{family}: eager_attention_forward was never called"
    return calls


def build(config):
    config._attn_implementation = "eager"
    config.initializer_range = 0.2   # (0.02: scores so flat that softmax is nearly a mean)
    torch.manual_seed(1)
    return transformers.AutoModel.from_config(config).double().eval()


def layer_spec(config, layer: int, n: int) -> AttentionSpec:
    """The swatkit spec of a layer: Hugging Face's ``sliding_window`` W is the row and the
    W − 1 keys before it (every causal family in transformers 5)."""
    d = config.head_dim
    if config.layer_types[layer] == "sliding_attention":
        return AttentionSpec.causal(n, d, sliding_window=config.sliding_window)
    return AttentionSpec.causal(n, d, sliding_window=n)


def test_gpt_oss_sinks_and_grouped_heads():
    config = transformers.GptOssConfig(
        vocab_size=64, hidden_size=32, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=WINDOW,
        num_local_experts=2, num_experts_per_tok=1,
        layer_types=["sliding_attention", "full_attention"], experts_implementation="eager")
    model = build(config)
    for layer in model.layers:  # (initialised to zeros: draw them, or a sink-less test passes)
        torch.nn.init.normal_(layer.self_attn.sinks, std=2.0)
    calls = run_captured("gpt_oss", model)
    assert len(calls) == 2
    for module, q, k, v, scaling, out in calls:
        assert q.shape == (4, N, 8) and k.shape == (2, N, 8)
        assert scaling == pytest.approx(8 ** -0.5, rel=1e-15)
        spec = layer_spec(config, module.layer_idx, N)
        sinks = module.sinks.detach().numpy()
        ours = window_attention(q, k, v, spec, sink_logits=sinks)
        assert np.abs(ours - out).max() < 1e-13
        dense = attention_reference(q, k, v, spec.mask(), sink_logits=sinks)
        assert np.abs(dense - out).max() < 1e-13
        # the sinks matter: without them the output is far off
        assert np.abs(window_attention(q, k, v, spec) - out).max() > 1e-2
        assert out.std() > 0.1


@pytest.mark.parametrize("family", ["mistral", "gemma3_text"])
def test_grouped_causal_windows(family):
    common = dict(vocab_size=64, hidden_size=48, intermediate_size=16, num_hidden_layers=2,
                  num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                  sliding_window=WINDOW)
    if family == "mistral":
        config = transformers.MistralConfig(**common)
        config.layer_types = ["sliding_attention"] * 2   # Mistral slides on every layer
        module_family = "mistral"
    else:  # query_pre_attn_scalar = head_dim: the scale is Hugging Face's 1/sqrt(d)
        config = transformers.Gemma3TextConfig(
            **common, query_pre_attn_scalar=8, layer_types=["sliding_attention",
                                                           "full_attention"])
        module_family = "gemma3"
    model = build(config)
    calls = run_captured(module_family, model)
    assert len(calls) == 2
    for module, q, k, v, scaling, out in calls:
        assert q.shape == (6, N, 8) and k.shape == (2, N, 8)
        assert scaling == pytest.approx(8 ** -0.5, rel=1e-15)
        spec = layer_spec(config, module.layer_idx, N)
        ours = window_attention(q, k, v, spec)
        assert np.abs(ours - out).max() < 1e-6   # (their softmax runs in float32)
        # K/V head h // 3 for query head h: the other order (h % 2) is far off
        wrong = window_attention(q, k[np.arange(6) % 2], v[np.arange(6) % 2], spec)
        assert np.abs(wrong - out).max() > 1e-2


def test_streaming_llm_sinks_through_mistral_attention():
    """StreamingLLM (Xiao et al. 2023): row i attends keys j <= i with i − j < W or j < 4.
    The mask is built here from that sentence and given to Mistral's eager attention."""
    config = transformers.MistralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=WINDOW)
    config._attn_implementation = "eager"
    from transformers.models.mistral import modeling_mistral

    attn = modeling_mistral.MistralAttention(config, 0).double().eval()
    rng = np.random.default_rng(3)
    q = rng.standard_normal((4, N, 8))
    k, v = rng.standard_normal((2, 1, N, 8))
    i, j = np.arange(N)[:, None], np.arange(N)[None, :]
    allowed = (j <= i) & ((i - j < WINDOW) | (j < 4))
    bias = torch.from_numpy(np.where(allowed, 0.0, -np.inf))[None, None]
    out, _ = modeling_mistral.eager_attention_forward(
        attn, *(torch.from_numpy(x)[None] for x in (q, k, v)), bias, scaling=8 ** -0.5)
    out = out[0].transpose(0, 1).numpy()
    spec = AttentionSpec.causal(N, 8, sliding_window=WINDOW, sink_tokens=4)
    assert np.array_equal(spec.mask(), allowed)
    assert np.abs(window_attention(q, k, v, spec) - out).max() < 1e-6
    # Longformer global tokens 0..3 are not the same thing: their rows see the future
    glob = AttentionSpec(N, 8, before=WINDOW - 1, after=0, global_tokens=(0, 1, 2, 3))
    assert np.abs(window_attention(q, k, v, glob) - out).max() > 1e-2
