"""Whole models from a Hugging Face ``config.json``: layers, heads, key/value heads, head_dim and
each layer's attention pattern, for model-level estimates (``swatkit estimate --model``).

The JSON is parsed here (nothing is downloaded; ``transformers`` is not needed). Shipped presets
are such files (``sim/presets/NAME.json``: the attention fields of the published config.json,
with the address and paper they come from under ``_swatkit_preset``):

==================== ========= ======== ======= ========= ==========================================
preset               layers    heads    kv      head_dim  attention
==================== ========= ======== ======= ========= ==========================================
longformer-base      12        12       12      64        bidirectional, attention_window 512
longformer-large     24        16       16      64        bidirectional, attention_window 512
bigbird-roberta-base 12        12       12      64        block-sparse, block 64, 3 random blocks
mistral-7b           32        32       8       128       causal, sliding_window 4096
==================== ========= ======== ======= ========= ==========================================

How each ``model_type`` maps to :class:`~swatkit.golden.AttentionSpec` (the single definition of
the window rule; the meanings are those of Hugging Face, ``/work/shared/FIELD-NOTES.md``):

* ``longformer``: ``attention_window`` (an int or one per layer, even) is W/2 keys on each side
  (``AttentionSpec.longformer``); ``attention_dilation`` (default 1) per layer. Global tokens are
  chosen per task at run time, not in the config, so a model's layers have none (one head's
  estimate takes them: ``swatkit estimate --global-tokens``).
* Decoders with ``sliding_window`` (``mistral`` and any other type that has the field):
  the row and the ``sliding_window − 1`` rows before it (``AttentionSpec.causal``);
  ``sliding_window: null`` or ``use_sliding_window: false`` means full causal attention.
  ``layer_types`` (``"sliding_attention"`` / ``"full_attention"``, one per layer) mixes the two.
* ``big_bird`` with ``attention_type: "block_sparse"``: only the **window part** is modelled, as
  a token band with BigBird's number of window keys per row (3·block_size: 3B/2 before, 3B/2 − 1
  after). BigBird's window is block-granular (a row's keys depend on its position in its block),
  and its 2 global blocks and ``num_random_blocks`` random blocks per row are **not** modelled
  (the core has neither yet). ``attention_type: "original_full"`` is full attention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from swatkit.golden import AttentionSpec

__all__ = ["PRESETS", "LayerPattern", "ModelConfig", "ModelError", "load_model"]

PRESETS = ("longformer-base", "longformer-large", "bigbird-roberta-base", "mistral-7b")


class ModelError(ValueError):
    """A model name or config.json that cannot be read or that the estimate cannot use."""


@dataclass(frozen=True)
class LayerPattern:
    """The attention pattern of one layer.

    ``kind`` is ``"window"`` (a band: ``before`` keys before the row, ``after`` after it, every
    ``dilation``-th), ``"full"`` (every key, or every earlier key if ``causal``) or
    ``"blocksparse"`` (BigBird's pattern, :meth:`AttentionSpec.bigbird`: blocks of
    ``block_size`` rows, ``random_blocks`` random key blocks per query block, the table drawn
    from ``pattern_seed`` or given as ``random_table``, which fits one length only).
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

    def spec(self, seq_len: int, head_dim: int) -> AttentionSpec:
        """The layer's :class:`AttentionSpec` for ``seq_len`` rows."""
        if self.kind == "blocksparse":
            return AttentionSpec.bigbird(seq_len, head_dim, block_size=self.block_size,
                                         num_random_blocks=self.random_blocks,
                                         seed=self.pattern_seed, random_table=self.random_table)
        if self.kind == "window":
            return AttentionSpec(seq_len, head_dim, self.before, self.after, self.dilation,
                                 tuple(self.global_tokens))
        return AttentionSpec(seq_len, head_dim, seq_len - 1, 0 if self.causal else seq_len - 1)

    def describe(self) -> str:
        if self.kind == "blocksparse":
            table = ("explicit random table" if self.random_table is not None
                     else f"seed {self.pattern_seed or 0}")
            return (f"BigBird blocks of {self.block_size}, {self.random_blocks} random block"
                    f"{'s' if self.random_blocks != 1 else ''} ({table})")
        if self.kind == "full":
            return "full causal" if self.causal else "full"
        if self.after == 0:
            text = f"causal window {self.before + 1}"
        else:
            text = f"bidirectional window {self.before}+1+{self.after}"
        text += f", dilation {self.dilation}" if self.dilation != 1 else ""
        g = self.global_tokens
        if g:
            where = ",".join(map(str, g)) if len(g) <= 4 else f"{g[0]}…{g[-1]}"
            text += f", {len(g)} global token{'s' if len(g) > 1 else ''} ({where})"
        return text


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


def _read(name_or_path: str) -> tuple[dict, str, str]:
    if name_or_path in PRESETS:
        text = resources.files("swatkit.sim").joinpath(f"presets/{name_or_path}.json").read_text()
        where = name_or_path
    else:
        path = Path(name_or_path)
        if path.is_dir():
            path = path / "config.json"
            if not path.exists():
                raise ModelError(f"no config.json in {name_or_path}")
        elif not path.exists():
            raise ModelError(f"unknown model {name_or_path!r}: not a preset "
                             f"({', '.join(PRESETS)}) and no such file or folder")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ModelError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        where = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"{where} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{where}: a config.json holds a JSON object, not {type(data).__name__}")
    meta = data.get("_swatkit_preset") or {}
    source = f"{meta.get('config_json', '')}; {meta.get('paper', '')}" if meta else where
    return data, where, source


def _field(data: dict, where: str, key: str, default=None, *, required: bool = True):
    if key not in data:
        if required:
            raise ModelError(f"{where} lacks {key!r}")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelError(f"{where}: {key} must be a positive integer, not {value!r}")
    return value


def _per_layer(data: dict, where: str, key: str, layers: int, default) -> list:
    value = data.get(key, default)
    if isinstance(value, list):
        if len(value) != layers:
            raise ModelError(f"{where}: {key} has {len(value)} entries for {layers} layers")
        return value
    return [value] * layers


def load_model(name_or_path: str) -> ModelConfig:
    """A preset by name, or a Hugging Face ``config.json`` (the file or its folder).

    Raises
    ------
    ModelError
        Unknown preset, unreadable or invalid file, a missing or bad field (named), or a
        ``model_type`` without sliding-window attention.
    """
    data, where, source = _read(str(name_or_path))
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise ModelError(f"{where} lacks 'model_type'" if model_type is None
                         else f"{where}: model_type must be a string, not {model_type!r}")
    layers = _field(data, where, "num_hidden_layers")
    heads = _field(data, where, "num_attention_heads")
    kv_heads = _field(data, where, "num_key_value_heads", heads, required=False)
    if heads % kv_heads:
        raise ModelError(f"{where}: num_key_value_heads ({kv_heads}) must divide "
                         f"num_attention_heads ({heads})")
    head_dim = data.get("head_dim")
    if head_dim is None:
        hidden = _field(data, where, "hidden_size")
        if hidden % heads:
            raise ModelError(f"{where}: hidden_size ({hidden}) is not a multiple of "
                             f"num_attention_heads ({heads}) and there is no head_dim")
        head_dim = hidden // heads
    else:
        head_dim = _field(data, where, "head_dim")
    max_positions = _field(data, where, "max_position_embeddings", None, required=False)

    note = ""
    if model_type == "longformer":
        windows = _per_layer(data, where, "attention_window", layers, None)
        if windows[0] is None:
            raise ModelError(f"{where} lacks 'attention_window'")
        dilations = _per_layer(data, where, "attention_dilation", layers, 1)
        patterns = []
        for i, (w, dil) in enumerate(zip(windows, dilations, strict=True)):
            if isinstance(w, bool) or not isinstance(w, int) or w <= 0 or w % 2:
                raise ModelError(f"{where}: attention_window of layer {i} must be a positive "
                                 f"even integer, not {w!r}")
            if isinstance(dil, bool) or not isinstance(dil, int) or dil <= 0:
                raise ModelError(f"{where}: attention_dilation of layer {i} must be a positive "
                                 f"integer, not {dil!r}")
            patterns.append(LayerPattern("window", w // 2, w // 2, dil))
        note = "global tokens (chosen per task at run time)"
    elif model_type == "big_bird":
        kind = data.get("attention_type", "block_sparse")
        if kind == "original_full":
            patterns = [LayerPattern("full")] * layers
        elif kind == "block_sparse":
            block = _field(data, where, "block_size")
            random_blocks = data.get("num_random_blocks", 3)
            keys = 3 * block
            patterns = [LayerPattern("window", keys // 2, keys - keys // 2 - 1)] * layers
            note = (f"window part only: a band of BigBird's {keys} window keys per row "
                    f"(3 blocks of {block}); its 2 global blocks and {random_blocks} random "
                    f"blocks per row are not modelled")
        else:
            raise ModelError(f"{where}: attention_type must be 'block_sparse' or "
                             f"'original_full', not {kind!r}")
    elif "sliding_window" in data or "layer_types" in data:
        window = data.get("sliding_window")
        if data.get("use_sliding_window") is False:
            window = None
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                                   or window <= 0):
            raise ModelError(f"{where}: sliding_window must be a positive integer or null, "
                             f"not {window!r}")
        if "layer_types" in data:
            types = data["layer_types"]
            if not isinstance(types, list) or len(types) != layers:
                raise ModelError(f"{where}: layer_types must be a list of {layers} entries")
        else:
            types = ["sliding_attention" if window else "full_attention"] * layers
        patterns = []
        for i, t in enumerate(types):
            if t == "sliding_attention":
                if window is None:
                    raise ModelError(f"{where}: layer {i} is sliding_attention but "
                                     f"sliding_window is not set")
                patterns.append(LayerPattern("window", window - 1, 0))
            elif t == "full_attention":
                patterns.append(LayerPattern("full", causal=True))
            else:
                raise ModelError(f"{where}: layer_types[{i}] must be 'sliding_attention' or "
                                 f"'full_attention', not {t!r}")
    else:
        raise ModelError(f"{where}: model_type {model_type!r} has no sliding-window attention "
                         f"(swatkit reads longformer, big_bird, and configs with "
                         f"sliding_window or layer_types)")
    return ModelConfig(str(name_or_path), model_type, layers, heads, kv_heads, head_dim,
                       tuple(patterns), max_positions, note, source)
