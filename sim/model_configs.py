"""Whole models from a Hugging Face ``config.json``: layers, heads, key/value heads, head_dim and
each layer's attention pattern, for model-level estimates (``swatkit estimate --model``).

The JSON is parsed here (nothing is downloaded; ``transformers`` is not needed), and read as
``transformers`` 5 reads it: a published config.json rarely lists ``layer_types``, the config
class derives them, and a field the file omits takes the class's default. Each family below is
checked against ``transformers.AutoConfig.for_model(**config)`` (its ``layer_types``,
``sliding_window``, heads and head_dim) in ``tests/sim/test_model_configs.py``. Shipped presets
are such files (``sim/presets/NAME.json``: the attention fields of the published config.json,
with the address and paper they come from under ``_swatkit_preset``):

==================== ========= ======== ======= ========= ==========================================
preset               layers    heads    kv      head_dim  attention
==================== ========= ======== ======= ========= ==========================================
longformer-base      12        12       12      64        bidirectional, attention_window 512
longformer-large     24        16       16      64        bidirectional, attention_window 512
bigbird-roberta-base 12        12       12      64        block-sparse, block 64, 3 random blocks
mistral-7b           32        32       8       128       causal, sliding_window 4096
gpt-oss-20b          24        64       8       64        sliding 128 and full alternating, sinks
gemma-3-1b           26        4        1       256       5 sliding (512) per full layer
==================== ========= ======== ======= ========= ==========================================

How each ``model_type`` maps to :class:`~swatkit.golden.AttentionSpec` (the single definition of
the window rule; the meanings are those of Hugging Face's classes, ``docs/estimation.md``, "Whole
models"):

* ``longformer``: ``attention_window`` (an int or one per layer, even) is W/2 keys on each side
  (``AttentionSpec.longformer``); ``attention_dilation`` (default 1) per layer. Global tokens are
  chosen per task at run time, not in the config, so a model's layers have none (one head's
  estimate takes them: ``swatkit estimate --global-tokens``).
* ``big_bird`` with ``attention_type: "block_sparse"``: BigBird's whole pattern
  (``AttentionSpec.bigbird``): the 3-block window, the first and last blocks global, and
  ``num_random_blocks`` random key blocks per query block from a reproducible table (seed 0;
  Hugging Face's training mode draws one per layer, its eval mode uses an all-zero table;
  SWAT's counts are the same for any table, every random slot counting), as
  ``swatkit estimate --bigbird`` has it. ``attention_type: "original_full"`` is full attention.
* Decoders: a ``sliding_attention`` layer sees the row and the ``sliding_window − 1`` rows before
  it (``AttentionSpec.causal``), a ``full_attention`` layer every earlier row. ``layer_types``
  (one per layer) is read where the config class reads it; else the family's rule derives it
  (:data:`FAMILIES`): ``mistral``/``mixtral`` slide every layer (``sliding_window: null``: none);
  ``gemma2`` and ``gpt_oss`` slide the even layers (0, 2, …); ``gemma3_text`` slides all but
  every ``sliding_window_pattern``-th (default 6), ``cohere2`` likewise (default 4), ``olmo3``
  all but every 4th; ``qwen2``/``qwen3`` slide layers ≥ ``max_window_layers`` (default 28) when
  ``use_sliding_window`` is true (default false); Gemma-3's ``use_bidirectional_attention``
  makes a sliding layer ``sliding_window // 2`` keys each side and a full layer bidirectional.
  ``gemma3`` (and any config whose layers sit in
  ``text_config``) is read from its ``text_config``. ``gpt_oss`` has one learned sink logit
  per query head in every layer (:attr:`ModelConfig.learned_sinks`; the estimate counts its
  term). ``attn_logit_softcapping`` (Gemma-2's
  default 50) is not modelled: :attr:`ModelConfig.warnings` says so. Another ``model_type``
  with ``sliding_window`` is read as every layer sliding, with a warning (its class may derive
  other layer types), unless it lists ``layer_types``.

A field of the wrong JSON type is refused (:class:`ModelError` naming the file and the key), never
coerced: ``"use_sliding_window": "false"`` is a string, not false.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from swatkit.golden import AttentionSpec
from swatkit.golden.checks import ConfigError, ConfigTypeError, check_int
from swatkit.support.inputs import InputFileError, load_json

__all__ = ["FAMILIES", "PRESETS", "Family", "LayerPattern", "ModelConfig", "ModelError",
           "load_model"]

PRESETS = ("longformer-base", "longformer-large", "bigbird-roberta-base", "mistral-7b",
           "gpt-oss-20b", "gemma-3-1b")

MAX_CONFIG_BYTES = 16 * 2 ** 20   # a config.json is a few KB; a larger file is not one
MAX_LAYERS = 10_000   # layers of a model: the estimate walks them one by one
MAX_HEADS = 65_536    # query heads of a layer


class ModelError(ValueError):
    """A model name or config.json that cannot be read or that the estimate cannot use."""


@dataclass(frozen=True)
class LayerPattern:
    """The attention pattern of one layer.

    ``kind`` is ``"window"`` (a band: ``before`` keys before the row, ``after`` after it, every
    ``dilation``-th), ``"full"`` (every key, or every earlier key if ``causal``) or
    ``"blocksparse"`` (BigBird's pattern, :meth:`AttentionSpec.bigbird`: blocks of
    ``block_size`` rows, ``random_blocks`` random key blocks per query block, the table drawn
    from ``pattern_seed`` or given as ``random_table``, which fits one length only). A window
    layer's ``sink_tokens``: StreamingLLM's key-only sink columns (``AttentionSpec.sink_tokens``;
    no config.json has them: :func:`~swatkit.sim.estimate.estimate_model` adds them).
    """

    kind: str
    before: int = 0
    after: int = 0
    dilation: int = 1
    causal: bool = False
    global_tokens: tuple[int, ...] = ()  # a window layer's global tokens (one head's estimate)
    block_size: int = 0
    random_blocks: int = 0
    pattern_seed: int | None = None
    random_table: tuple[tuple[int, ...], ...] | None = None
    sink_tokens: int = 0

    def spec(self, seq_len: int, head_dim: int) -> AttentionSpec:
        """The layer's :class:`AttentionSpec` for ``seq_len`` rows."""
        if self.kind == "blocksparse":
            return AttentionSpec.bigbird(seq_len, head_dim, block_size=self.block_size,
                                         num_random_blocks=self.random_blocks,
                                         seed=self.pattern_seed, random_table=self.random_table)
        if self.kind == "window":
            return AttentionSpec(seq_len, head_dim, self.before, self.after, self.dilation,
                                 tuple(self.global_tokens), sink_tokens=self.sink_tokens)
        return AttentionSpec(seq_len, head_dim, seq_len - 1, 0 if self.causal else seq_len - 1)

    def describe(self, seq_len: int, head_dim: int) -> str:
        """The layer's pattern in words at ``seq_len`` rows: ``full`` (``full causal``) for a
        full-attention layer, else its spec's own description
        (:meth:`~swatkit.golden.AttentionSpec.describe`)."""
        if self.kind == "full":
            return "full causal" if self.causal else "full"
        return self.spec(seq_len, head_dim).describe()


@dataclass(frozen=True)
class ModelConfig:
    """What the estimate needs of a model.

    Parameters
    ----------
    name : str
        Preset name or the config.json path.
    model_type : str
        Hugging Face ``model_type``.
    layers, heads, kv_heads, head_dim : int
        ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads`` (= heads if the
        config has none), ``head_dim`` (else ``hidden_size / num_attention_heads``).
    patterns : tuple of LayerPattern
        One per layer.
    max_positions : int or None
        ``max_position_embeddings``.
    note : str
        What of the model's attention is not modelled ("" if everything is).
    source : str
        Where the values come from (the preset's citation or the file's path).
    warnings : tuple of str
        What of the config is read but not modelled, or read by a guess, one line each (the
        CLI prints them as warnings).
    learned_sinks : bool
        One learned sink logit per query head in every layer (GPT-OSS).
    """

    name: str
    model_type: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    patterns: tuple[LayerPattern, ...]
    max_positions: int | None = None
    note: str = ""
    source: str = ""
    warnings: tuple[str, ...] = ()
    learned_sinks: bool = False

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    def layer_groups(self) -> list[tuple[LayerPattern, list[int]]]:
        """Distinct patterns with the indices of the layers that have them, in first-use order."""
        groups: dict[LayerPattern, list[int]] = {}
        for i, pattern in enumerate(self.patterns):
            groups.setdefault(pattern, []).append(i)
        return list(groups.items())


@dataclass(frozen=True)
class Family:
    """How ``transformers`` 5 reads one decoder ``model_type``'s attention fields.

    Parameters
    ----------
    defaults : dict
        The config class's defaults for the fields the file may omit (``None`` for
        ``num_key_value_heads``: ``num_attention_heads``; for ``head_dim``:
        ``hidden_size / num_attention_heads``).
    every : int
        The derived layer types (no ``layer_types`` in the file): 0 — every layer slides when
        ``sliding_window`` is set; k — layer i slides unless ``(i + 1) % k == 0``.
    pattern_key : str
        The field that replaces ``every`` ("" if none).
    qwen : bool
        Qwen's rule instead: layer i slides when ``use_sliding_window`` (default false) and
        ``i >= max_window_layers`` (default 28).
    reads_layer_types : bool
        Whether the config class reads ``layer_types`` (Mistral's does not: every layer slides).
    bidirectional : bool
        ``use_bidirectional_attention`` is read (Gemma-3: a sliding layer sees
        ``sliding_window // 2`` keys each side, a full layer every key).
    softcapping : bool
        ``attn_logit_softcapping`` is read (Gemma-2, Gemma-3).
    learned_sinks : bool
        Every attention layer has one learned sink logit per query head (GPT-OSS's ``sinks``:
        a term of each row's softmax max and denominator that carries no value).
    note : str
        What of the family's attention the estimate leaves out.
    """

    defaults: dict = field(default_factory=dict)
    every: int = 0
    pattern_key: str = ""
    qwen: bool = False
    reads_layer_types: bool = True
    bidirectional: bool = False
    softcapping: bool = False
    learned_sinks: bool = False
    note: str = ""


def _defaults(layers, heads, kv_heads, hidden, window, positions, head_dim=None, **more):
    return {"num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "hidden_size": hidden, "head_dim": head_dim,
            "sliding_window": window, "max_position_embeddings": positions, **more}


_QWEN = {"use_sliding_window": False, "max_window_layers": 28}

#: The decoder families read as ``transformers`` 5.25 reads them (the defaults of their config
#: classes; ``tests/sim/test_model_configs.py`` compares each with ``AutoConfig.for_model``).
FAMILIES = {
    "mistral": Family(_defaults(32, 32, 8, 4096, 4096, 131072), reads_layer_types=False),
    "mixtral": Family(_defaults(32, 32, 8, 4096, None, 131072), reads_layer_types=False),
    "ministral": Family(_defaults(32, 32, 8, 4096, 4096, 131072)),
    "gemma2": Family(_defaults(26, 8, 4, 2304, 4096, 8192, 256, attn_logit_softcapping=50.0),
                     every=2, softcapping=True),
    "gemma3_text": Family(_defaults(26, 8, 4, 2304, 4096, 131072, 256,
                                    attn_logit_softcapping=None, sliding_window_pattern=6),
                          every=6, pattern_key="sliding_window_pattern", bidirectional=True,
                          softcapping=True),
    "qwen2": Family(_defaults(32, 32, None, 4096, 4096, 32768, **_QWEN), qwen=True),
    "qwen3": Family(_defaults(32, 32, None, 4096, 4096, 32768, 128, **_QWEN), qwen=True),
    "gpt_oss": Family(_defaults(36, 64, 8, 2880, 128, 131072, 64), every=2,
                      learned_sinks=True),
    "cohere2": Family(_defaults(40, 64, None, 8192, 4096, 8192, sliding_window_pattern=4),
                      every=4, pattern_key="sliding_window_pattern"),
    "olmo3": Family(_defaults(32, 32, None, 4096, 4096, 2048), every=4),
}

# composite configs whose text config may omit its model_type
_TEXT_CONFIG_TYPES = {"gemma3": "gemma3_text"}

_LAYER_TYPES = ("sliding_attention", "full_attention")


def _read(name_or_path: str) -> tuple[dict, str, str]:
    if name_or_path in PRESETS:
        text = resources.files("swatkit.sim").joinpath(f"presets/{name_or_path}.json").read_text()
        where = name_or_path
        data = json.loads(text)
    else:
        path = Path(name_or_path)
        if path.is_dir():
            path = path / "config.json"
            if not path.exists():
                raise ModelError(f"no config.json in {name_or_path}")
        elif not path.exists():
            raise ModelError(f"unknown model {name_or_path!r}: not a preset "
                             f"({', '.join(PRESETS)}) and no such file or folder")
        where = str(path)
        try:   # (bounded: a device, a FIFO or a huge file is no config.json)
            data = load_json(path, MAX_CONFIG_BYTES)
        except InputFileError as e:
            raise ModelError(str(e)) from None
    if not isinstance(data, dict):
        raise ModelError(f"{where}: a config.json holds a JSON object, not {type(data).__name__}")
    meta = data.get("_swatkit_preset") or {}
    source = f"{meta.get('config_json', '')}; {meta.get('paper', '')}" if meta else where
    return data, where, source


_MISSING = object()


class _Fields:
    """The fields of one config object (the file's, or its ``text_config``), each checked for
    its JSON type and named in messages as ``prefix + key``; an absent field takes the family's
    default."""

    def __init__(self, data: dict, where: str, prefix: str, family: Family | None):
        self.data, self.where, self.prefix = data, where, prefix
        self.defaults = family.defaults if family else {}

    def name(self, key: str) -> str:
        return self.prefix + key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default=_MISSING):
        if key in self.data:
            return self.data[key]
        return self.defaults.get(key, default)

    def fail(self, key: str, what: str, value) -> ModelError:
        return ModelError(f"{self.where}: {self.name(key)} must be {what}, not {value!r}")

    def int(self, key: str, default=_MISSING, *, lo: int = 1, hi: int | None = None,
            null: bool = False):
        value = self.raw(key, default)
        if value is _MISSING:
            raise ModelError(f"{self.where} lacks {self.name(key)!r}")
        if value is None and null:
            return None
        try:   # (the library's integer rule and wording; JSON has no NumPy integers)
            if isinstance(value, float):
                raise ConfigTypeError(f"{self.name(key)} must be an integer, not {value!r}")
            return check_int(key, value, lo, hi, name=self.name(key),
                             why=hi and "a bound far above any published model")
        except ConfigError as e:
            text = str(e).replace(" must be ", " must be null or ", 1) if null else str(e)
            raise ModelError(f"{self.where}: {text}") from None

    def bool(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def number(self, key: str):
        """A positive number or null (absent: the family's default, else null)."""
        value = self.raw(key, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not value > 0):
            raise self.fail(key, "a positive number or null", value)
        return value

    def layer_types(self, layers: int) -> list[str]:
        types = self.data["layer_types"]
        if not isinstance(types, list) or len(types) != layers:
            raise ModelError(f"{self.where}: {self.name('layer_types')} must be a list of "
                             f"{layers} entries")
        for i, t in enumerate(types):
            if t not in _LAYER_TYPES:
                raise ModelError(f"{self.where}: {self.name('layer_types')}[{i}] must be "
                                 f"'sliding_attention' or 'full_attention', not {t!r}")
        return types


def _text_config(data: dict, where: str) -> tuple[dict, str, str]:
    """The object the layers are described in: a composite config's ``text_config`` (its
    ``model_type``, else the one its parent implies), else the file's."""
    if "text_config" not in data:
        return data, "", data.get("model_type")
    text = data["text_config"]
    if not isinstance(text, dict):
        raise ModelError(f"{where}: text_config must be a JSON object, not {text!r}")
    model_type = text.get("model_type", _TEXT_CONFIG_TYPES.get(data.get("model_type")))
    if model_type is None:
        raise ModelError(f"{where} lacks 'text_config.model_type'")
    return text, "text_config.", model_type


def _decoder(f: _Fields, family: Family | None, model_type: str, layers: int):
    """Per-layer patterns of a decoder with sliding-window layers, and the warnings."""
    warnings = []
    window = f.int("sliding_window", None, null=True)
    if (family is None or family.qwen) and not f.bool("use_sliding_window", family is None):
        window = None   # (Qwen's class sets sliding_window to None)
    bidirectional = False
    if family is not None and family.bidirectional:
        bidirectional = f.bool("use_bidirectional_attention", False)
    elif f.has("use_bidirectional_attention"):
        value = f.raw("use_bidirectional_attention")
        if value not in (None, False):
            raise f.fail("use_bidirectional_attention", f"false or null for model_type "
                         f"{model_type!r} (swatkit reads bidirectional sliding layers of "
                         f"gemma3_text only)", value)
    if f.has("layer_types") and (family is None or family.reads_layer_types):
        types = f.layer_types(layers)
    else:
        if f.has("layer_types"):   # (Mistral's config class drops it; its layers all slide)
            warnings.append(f"{f.where}: {f.name('layer_types')} is ignored, as transformers' "
                            f"{model_type} ignores it (every layer uses sliding_window)")
        if family is None:
            types = [_LAYER_TYPES[window is None]] * layers
            if window is not None:
                warnings.append(f"{f.where}: model_type {model_type!r} is not a family swatkit "
                                f"knows ({', '.join(FAMILIES)}): every layer is read as "
                                f"sliding_attention (window {window}); give layer_types if "
                                f"its config class derives others")
        elif family.qwen:
            first = f.int("max_window_layers", lo=0)
            types = [_LAYER_TYPES[window is None or i < first] for i in range(layers)]
        elif family.every == 0:
            types = [_LAYER_TYPES[window is None]] * layers
        else:
            every = (f.int(family.pattern_key) if family.pattern_key else family.every)
            types = [_LAYER_TYPES[(i + 1) % every == 0] for i in range(layers)]
    patterns = []
    for i, t in enumerate(types):
        if t == "sliding_attention":
            if window is None:
                raise ModelError(f"{f.where}: layer {i} is sliding_attention but "
                                 f"{f.name('sliding_window')} is not set")
            patterns.append(LayerPattern("window", window // 2, window // 2) if bidirectional
                            else LayerPattern("window", window - 1, 0))
        else:
            patterns.append(LayerPattern("full", causal=not bidirectional))
    if family is None or family.softcapping:
        cap = f.number("attn_logit_softcapping")
        if cap is not None:
            warnings.append(f"{f.where}: {f.name('attn_logit_softcapping')} {cap:g} is not "
                            f"modelled: the model caps every score at ±{cap:g} "
                            f"(c·tanh(s/c)) before the softmax, the core and the golden "
                            f"models do not, and the estimate counts no tanh")
    return patterns, warnings


def load_model(name_or_path: str) -> ModelConfig:
    """A preset by name, or a Hugging Face ``config.json`` (the file or its folder), read as
    ``transformers`` reads it (see the module's docstring).

    Raises
    ------
    ModelError
        Unknown preset, unreadable or invalid file, a missing field or one of the wrong JSON
        type or value (named), or a ``model_type`` without sliding-window attention.
    """
    data, where, source = _read(str(name_or_path))
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise ModelError(f"{where} lacks 'model_type'" if model_type is None
                         else f"{where}: model_type must be a string, not {model_type!r}")
    data, prefix, model_type = _text_config(data, where)
    if not isinstance(model_type, str):
        raise ModelError(f"{where}: {prefix}model_type must be a string, not {model_type!r}")
    family = FAMILIES.get(model_type)
    f = _Fields(data, where, prefix, family)
    layers = f.int("num_hidden_layers", hi=MAX_LAYERS)
    heads = f.int("num_attention_heads", hi=MAX_HEADS)
    kv_heads = f.int("num_key_value_heads", None, null=True) or heads
    if heads % kv_heads:
        raise ModelError(f"{where}: {f.name('num_key_value_heads')} ({kv_heads}) must divide "
                         f"{f.name('num_attention_heads')} ({heads})")
    head_dim = f.int("head_dim", None, null=True)
    if head_dim is None:
        hidden = f.int("hidden_size")
        if hidden % heads:
            raise ModelError(f"{where}: {f.name('hidden_size')} ({hidden}) is not a multiple of "
                             f"{f.name('num_attention_heads')} ({heads}) and there is no "
                             f"head_dim")
        head_dim = hidden // heads
    max_positions = f.int("max_position_embeddings", None, null=True)

    note, warnings = "", []
    if model_type == "longformer":
        windows = _per_layer(data, where, "attention_window", layers, None)
        if windows[0] is None:
            raise ModelError(f"{where} lacks 'attention_window'")
        dilations = _per_layer(data, where, "attention_dilation", layers, 1)
        patterns = []
        for i, (w, dil) in enumerate(zip(windows, dilations, strict=True)):
            if isinstance(w, bool) or not isinstance(w, int) or w <= 0 or w % 2:
                # (AttentionSpec.longformer's rule and wording)
                raise ModelError(f"{where}: attention_window of layer {i} must be a positive "
                                 f"even integer, not {w!r}")
            try:
                check_int("attention_dilation", dil, 1, name=f"attention_dilation of layer {i}")
            except ConfigError as e:
                raise ModelError(f"{where}: {e}") from None
            patterns.append(LayerPattern("window", w // 2, w // 2, dil))
        note = "global tokens (chosen per task at run time)"
    elif model_type == "big_bird":
        kind = f.raw("attention_type", "block_sparse")
        if kind == "original_full":
            patterns = [LayerPattern("full")] * layers
        elif kind == "block_sparse":
            block = f.int("block_size")
            random_blocks = f.int("num_random_blocks", 3, lo=0)
            patterns = [LayerPattern("blocksparse", block_size=block,
                                     random_blocks=random_blocks, pattern_seed=0)] * layers
        else:
            raise ModelError(f"{where}: attention_type must be 'block_sparse' or "
                             f"'original_full', not {kind!r}")
    elif family is not None or f.has("sliding_window") or f.has("layer_types"):
        patterns, warnings = _decoder(f, family, model_type, layers)
        note = family.note if family is not None else ""
    else:
        raise ModelError(f"{where}: model_type {model_type!r} has no sliding-window attention "
                         f"(swatkit reads longformer, big_bird, {', '.join(FAMILIES)}, and "
                         f"configs with sliding_window or layer_types)")
    return ModelConfig(str(name_or_path), model_type, layers, heads, kv_heads, head_dim,
                       tuple(patterns), max_positions, note, source, tuple(warnings),
                       family is not None and family.learned_sinks)


def _per_layer(data: dict, where: str, key: str, layers: int, default) -> list:
    value = data.get(key, default)
    if isinstance(value, list):
        if len(value) != layers:
            raise ModelError(f"{where}: {key} has {len(value)} entries for {layers} layers")
        return value
    return [value] * layers
