"""Configuration of the HybridKV cache, validated on construction.

Vocabulary used across the package: a *budget* is either a ratio of the prompt (a float in (0, 1]) or a
number of tokens per KV head (an int >= 1); *tokens* always count positions of one KV head.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .errors import BudgetError, ConfigError

HeadTypePolicy = Literal["online", "static", "dynamic"]
ColdTier = Literal["host", "disk"]
ChunkScoring = Literal["sum", "max"]
SelectAt = Literal["prefill", "question"]


def validate_budget(budget: float | int) -> float | int:
    """Reject budgets that cannot mean anything before any model work is done."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise BudgetError(
            f"budget must be a ratio in (0, 1] (e.g. 0.1) or an int >= 1 of tokens per KV head, got {budget!r}"
        )
    if isinstance(budget, int):
        if budget < 1:
            raise BudgetError(f"a token budget must be an int >= 1 per KV head, got {budget}; use e.g. 256 or 0.1")
        return budget
    if not (0.0 < budget <= 1.0):
        raise BudgetError(f"a budget ratio must be in (0, 1], got {budget}; use e.g. 0.1 for 10% of the prompt")
    return float(budget)


@dataclass(frozen=True)
class HybridKVConfig:
    """Everything that decides what the cache keeps.

    Defaults are the project's choices where the paper is silent (see docs/method.md): the paper fixes
    only theta = 0.9 and the per-input online classification.
    """

    budget: float | int = 0.1
    """Ratio of each prompt kept per KV head (float), or tokens per KV head (int)."""
    theta: float = 0.9
    """A KV head is static when its text-centric concentration score is >= theta."""
    score: str = "text_topk"
    """Name of the text-centric score (see ``hybridkv.classify.SCORES``): ``text_topk``, concentration on
    text, by default; ``topk_mass`` is concentration on any tokens (the default before; equal on text)."""
    classify: str = "online"
    """``online``: types from this input's scores (the paper); ``profile``: the profile's fixed types;
    ``blend``: the profile as a prior that this input's score overturns only by more than ``margin``."""
    rule: str = "threshold"
    """Online rule: ``threshold`` (the paper's, uses theta) or ``quantile`` (uses dynamic_share)."""
    dynamic_share: float = 0.5
    """For ``quantile``: the share of each layer's KV heads made dynamic (the least concentrated)."""
    profile: Any = None
    """A ``hybridkv.profile.HeadProfile``, or the path of a profile JSON, which is loaded (needed by
    ``classify`` = profile / blend)."""
    margin: float = 0.05
    """For ``blend``: how far past theta an input's score must be to overturn the profile's type."""
    score_top_ratio: float = 0.05
    """For ``topk_mass`` and ``text_topk``: the share of prompt keys whose attention mass measures concentration."""
    allocator: str = "hybridkv"
    """How the budget is split: ``hybridkv`` (type level, then head level), ``uniform`` (every head alike),
    ``pyramid`` (PyramidKV: layers get less with depth, averaging to the budget; heads alike),
    ``adaptive`` (AdaKV: heads compete for the layer's budget through their window attention), ``fastv``
    (layers below ``fastv_layer`` keep everything, the later layers share what is left; heads alike),
    ``profile`` (every KV head of the model a share of the model's budget in proportion to the profile's
    visual attention, above a ``uniform_share`` floor; needs ``profile``), or ``modality`` (MadaKV: each head's
    share split between text and visual tokens by its attention, unused budget carried to later layers)."""
    layer_level: str = "none"
    """A model -> layer level above the allocator (ours, beyond the paper; needs ``profile``): ``none``, ``profile``
    (each layer's share of the model's budget grows with how spread its heads' attention was over the profile's
    calibration set, averaging to the budget), or ``adaptive`` (``profile``, and each layer's share shrinks further
    for a prompt whose attention at that layer is more concentrated than in calibration: simple inputs are
    compressed harder; the budget is then a ceiling, and the bytes actually kept are what is reported)."""
    r: float = 1.0
    """Type-level balance of ``hybridkv`` allocation: a dynamic head weighs ``r`` static heads."""
    selector: str = "text_prior"
    """How evicting (static) heads rank tokens: ``text_prior`` (HybridKV), ``attention`` (SnapKV), ``recency``,
    or ``fastv`` (text first, then visual tokens by one ranking taken at layer ``fastv_layer - 1``)."""
    token_scores: str = "window"
    """What ranks tokens: ``window`` (attention of the observation window's queries, SnapKV) or ``accumulated``
    (attention accumulated over every prompt query, H2O; computed in query blocks)."""
    evict_during_decode: bool = False
    """H2O: keep every compressed head at its budget while decoding, by evicting the kept prompt token with the
    least attention accumulated over the prompt and every decode query so far as each new token arrives (new
    tokens themselves are never evicted). Needs ``head_types="static"`` and ``token_scores="accumulated"``;
    a head whose budget covers its whole prompt never evicts."""
    merge: str = "none"
    """What happens to evicted tokens of static heads: ``none`` (freed) or ``average`` (LOOK-M's averaged
    merging: each one is averaged into the kept token whose key is most similar, per head)."""
    fastv_layer: int = 2
    """For the ``fastv`` allocator and selector: FastV's K, the first layer whose cache is pruned."""
    uniform_share: float = 0.2
    """For the ``profile`` allocator: the share of the per-head budget every head gets before the profile-weighted
    split (SparseMM's uniform part)."""
    head_types: HeadTypePolicy = "online"
    """``online`` classifies per input; ``static`` / ``dynamic`` force every head (the paper's ablations)."""
    window: int = 16
    """Observation window: the prompt's last tokens, whose queries score heads and tokens; kept as the recent
    window unless ``recent_window`` says otherwise."""
    recent_window: int | None = None
    """The prompt's last tokens every head keeps; None: the observation window. ``fit_short_prompts`` lowers it
    on short prompts (scoring still reads the whole observation window)."""
    sinks: int = 4
    """First prompt tokens always kept (attention sinks)."""
    pooling_kernel: int = 15
    """Max-pooling width over token scores, so a kept token comes with its neighbours. SnapKV publishes 7;
    15 kept multi-token answers (5-digit keys) whole and scored higher for every pooling method on the
    long-context validation split (docs/results.md), so all of them share it."""
    chunk_size: int = 16
    """Tokens per chunk of a dynamic head in the cold tier."""
    fit_short_prompts: bool = True
    """Beyond the paper: where a head's budget cannot afford ``window`` and ``MIN_SELECTED_CHUNKS`` chunks of
    ``chunk_size`` beside the sinks (short prompts, small budgets), shrink the recent window kept and the sinks
    to a quarter of the budget each and the chunks to fit (``hybridkv.budget.fit_short_layout``; every method
    alike; the queries that score heads and tokens are still the whole observation window). False keeps the
    configured sizes, so short prompts keep only sinks and window."""
    short_window_yields: bool = True
    """Beyond the paper: on a short prompt whose head share is spent on sinks and window with less than one chunk
    to spare, shorten the recent window so that one chunk fits (``fit_short_layout(window_yields=True)``).
    On the embedded suite's shortest prompts (question-agnostic, 10%) `attribute` went from 0 to 94% for every
    retrieval method (docs/methods.md, "Short prompts"); False keeps the one-token window."""
    chunk_shape: str = "sequence"
    """How a dynamic head's tokens are grouped into chunks: ``sequence`` (runs of consecutive positions, as
    Quest's pages) or ``tiles`` (beyond the paper: an image's tokens in square tiles of side
    ``isqrt(chunk_size)``, text in runs, where the model's adapter knows the image grids; see
    ``hybridkv.cache.chunking``). Tiles scored below runs on the embedded model (docs/method.md, section 4),
    so they are an option, not the default."""
    dynamic_core: float = 0.0
    """Beyond the paper: the share of a dynamic head's retrieval budget spent on a resident core, the tokens
    its selector ranks highest at prefill (as a static head keeps them); the rest goes to retrieved chunks,
    which then never hold a core token. 0 is the paper's pure retrieval."""
    chunkless_core: bool = True
    """Beyond the paper: a dynamic head whose share cannot buy one chunk beside its sinks and window (tiny
    budgets of short prompts) keeps its best tokens resident, chosen at prefill as a static head chooses,
    instead of attending its sinks and window only. Long prompts never meet it. Quest keeps its own
    behaviour (False)."""
    chunk_scoring: ChunkScoring = "max"
    """How a GQA group's query heads rank a dynamic head's chunks: ``max`` takes, per chunk, the highest bound of
    any query head in the group, so a chunk one head needs is not outvoted by the others; ``sum`` bounds the
    group's summed logit (one matmul fewer per step). ``max`` scored as well or better in every SmolLM2 comparison
    (docs/method.md, section 4), so it is the default."""
    select_at: SelectAt = "prefill"
    """When a question is asked after compression (a ``Session``, the question-agnostic setting), what chooses
    the heads' types and what static heads keep: ``prefill``, the context's own last queries (the paper; what is
    evicted is gone); ``question`` (beyond the paper), each question's own queries: the context's KV waits whole
    in the cold tier until the question is appended, is then classified and compressed exactly as a prompt that
    ends with the question would be, and is restored whole for the next question. Costs one read of the
    context's KV per question and a cold tier that holds all of it (reported in ``cold_bytes``). With the question
    in the prompt (``generate``) there is nothing to wait for, and both choose alike."""
    lru_extra_chunks: int = 0
    """Resident chunk slots per dynamic head beyond what one step attends (kept for reuse, LRU)."""
    cold_tier: ColdTier = "host"
    """Where dynamic heads' chunk bodies live: host memory, or a memory-mapped file on disk."""
    cold_dir: str | None = None
    """Directory for the disk tier (a temporary directory when None)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific options (kept for forward compatibility, recorded in results)."""

    def __post_init__(self) -> None:
        validate_budget(self.budget)
        if isinstance(self.profile, str | os.PathLike):  # a path is as good as the loaded profile
            from .profile import load_profile

            object.__setattr__(self, "profile", load_profile(self.profile))
        if not (0.0 <= self.theta <= 1.0):
            raise ConfigError(f"theta must be in [0, 1], got {self.theta}")
        if not (0.0 < self.score_top_ratio <= 1.0):
            raise ConfigError(f"score_top_ratio must be in (0, 1], got {self.score_top_ratio}")
        from .budget import ALLOCATORS
        from .cache.prefill import SELECTORS

        if self.selector not in SELECTORS:
            raise ConfigError(f"unknown selector {self.selector!r}; choose one of {sorted(SELECTORS)}")
        if self.allocator not in ALLOCATORS:
            raise ConfigError(f"unknown allocator {self.allocator!r}; choose one of {sorted(ALLOCATORS)}")
        if self.layer_level not in ("none", "profile", "adaptive"):
            raise ConfigError(f"layer_level must be none, profile or adaptive, got {self.layer_level!r}")
        if self.layer_level != "none":
            if self.profile is None:
                raise ConfigError(
                    f"layer_level={self.layer_level!r} needs a head profile: run `hybridkv profile --model M --out "
                    "profile.json`, then pass --profile profile.json (Python: profile=load_profile('profile.json'))"
                )
            if self.profile.score_name != self.score:
                raise ConfigError(
                    f"the profile measured score {self.profile.score_name!r} but the cache uses {self.score!r}; "
                    f"pass --score {self.profile.score_name} or re-profile"
                )
            if self.allocator in ("fastv", "profile", "modality"):
                raise ConfigError(
                    f"layer_level={self.layer_level!r} scales a per-layer allocator; allocator {self.allocator!r} "
                    "sets the whole model's budgets itself (use hybridkv, uniform, pyramid or adaptive)"
                )
        if not (self.r > 0):
            raise ConfigError(f"r must be > 0 (weight of a dynamic head against a static one), got {self.r}")
        if self.head_types not in ("online", "static", "dynamic"):
            raise ConfigError(f"head_types must be online, static or dynamic, got {self.head_types!r}")
        for name in ("window", "chunk_size", "pooling_kernel"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.recent_window is not None and self.recent_window < 0:
            raise ConfigError(f"recent_window must be >= 0 (or None: the observation window), got {self.recent_window}")
        if self.sinks < 0 or self.lru_extra_chunks < 0:
            raise ConfigError("sinks and lru_extra_chunks must be >= 0")
        if not (0.0 <= self.dynamic_core < 1.0):
            raise ConfigError(f"dynamic_core must be in [0, 1), got {self.dynamic_core}")
        if self.pooling_kernel % 2 == 0:
            raise ConfigError(f"pooling_kernel must be odd so pooling keeps positions, got {self.pooling_kernel}")
        from .cache.chunking import CHUNK_SHAPES

        if self.chunk_shape not in CHUNK_SHAPES:
            raise ConfigError(f"chunk_shape must be one of {', '.join(CHUNK_SHAPES)}, got {self.chunk_shape!r}")
        if self.chunk_scoring not in ("sum", "max"):
            raise ConfigError(f"chunk_scoring must be 'sum' or 'max', got {self.chunk_scoring!r}")
        if self.cold_tier not in ("host", "disk"):
            raise ConfigError(f"cold_tier must be 'host' or 'disk', got {self.cold_tier!r}")
        from .classify import MODES, RULES, SCORES  # local import: classify depends on nothing here

        if self.rule not in RULES:
            raise ConfigError(f"unknown rule {self.rule!r}; choose one of {sorted(RULES)}")
        if self.classify not in MODES:
            raise ConfigError(f"unknown classify mode {self.classify!r}; choose one of {list(MODES)}")
        if self.classify != "online" and self.profile is None:
            raise ConfigError(
                f"classify={self.classify!r} needs a head profile; pass --profile FILE (see `hybridkv profile`)"
            )
        if self.classify == "blend" and self.profile.score_name != self.score:
            raise ConfigError(
                f"the profile measured score {self.profile.score_name!r} but the cache uses {self.score!r}; "
                f"pass --score {self.profile.score_name} or re-profile"
            )
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")
        if not (0.0 <= self.dynamic_share <= 1.0):
            raise ConfigError(f"dynamic_share must be in [0, 1], got {self.dynamic_share}")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {sorted(SCORES)}")
        if self.token_scores not in ("window", "accumulated"):
            raise ConfigError(f"token_scores must be 'window' or 'accumulated', got {self.token_scores!r}")
        if self.evict_during_decode and (self.head_types != "static" or self.token_scores != "accumulated"):
            raise ConfigError(
                "evict_during_decode (H2O) ranks kept tokens by accumulated attention and evicts from every head: "
                "it needs head_types='static' and token_scores='accumulated' (use method h2o)"
            )
        if self.select_at not in ("prefill", "question"):
            raise ConfigError(f"select_at must be 'prefill' or 'question', got {self.select_at!r}")
        if self.select_at == "question" and self.token_scores == "accumulated":
            raise ConfigError(
                "select_at='question' scores tokens by the question's window; accumulated scores (H2O) need every "
                "prompt query, which a session has already discarded: use select_at='prefill' with h2o"
            )
        if self.merge not in ("none", "average"):
            raise ConfigError(f"merge must be 'none' or 'average', got {self.merge!r}")
        if isinstance(self.fastv_layer, bool) or not isinstance(self.fastv_layer, int) or self.fastv_layer < 1:
            raise ConfigError(
                f"fastv_layer must be an int >= 1 (layers below it keep their full KV), got {self.fastv_layer!r}"
            )
        if self.selector == "fastv" and self.allocator != "fastv":
            raise ConfigError(
                f"selector 'fastv' ranks by a layer that must keep its full KV; use it with allocator 'fastv', "
                f"not {self.allocator!r}"
            )
        if not (0.0 <= self.uniform_share <= 1.0):
            raise ConfigError(f"uniform_share must be in [0, 1], got {self.uniform_share}")
        if self.allocator == "profile":
            if self.profile is None:
                raise ConfigError(
                    "allocator 'profile' (sparsemm) needs a head profile: run `hybridkv profile --model M --out "
                    "profile.json`, then pass --profile profile.json (Python: profile=load_profile('profile.json'))"
                )
            if getattr(self.profile, "visual_mass", None) is None:
                raise ConfigError(
                    "this head profile has no per-head visual attention (it predates the visual_mass array); "
                    "re-run `hybridkv profile --model M --out profile.json` and pass the new profile"
                )

    @property
    def kept_window(self) -> int:
        """The recent tokens every head keeps (``recent_window``, else the observation window)."""
        return self.window if self.recent_window is None else self.recent_window

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options; a profile is recorded by what it was measured on, not its arrays."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "profile"}
        if self.profile is not None:
            out["profile"] = {"fingerprint": self.profile.fingerprint, "calib": self.profile.calib}
        return out


def config_default(name: str) -> Any:
    """The default of a ``HybridKVConfig`` field, so other entry points (profiling) cannot drift from it."""
    return HybridKVConfig.__dataclass_fields__[name].default
