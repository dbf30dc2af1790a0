"""The architecture space of the paper: LLaMA-style decoders and their parameter arithmetic.

This module is the one source of truth for model shape: every number derived from a shape
(parameter counts, the MLP-to-attention ratio r, d/sqrt(N), GQA) comes from `ArchSpec`.
numpy only, so the fitter and the search import it in well under a second.

Accounting (PAPER.md section 1; reproduces every r and d/sqrt(N) the paper prints):

    attn_per_layer = 2*d*(n_heads*head_dim) + 2*d*(n_kv_heads*head_dim)   # Wq, Wo + Wk, Wv
    mlp_per_layer  = 3*d*ffn_dim                                          # gate, up, down
    r              = mlp_per_layer / attn_per_layer
    N              = n_layers*(attn_per_layer + mlp_per_layer)            # norms, embeddings excluded

Multi-head latent attention (attention="mla", DeepSeek-V2/V3) replaces the GQA term; with
H = n_heads, qk = qk_nope_head_dim + qk_rope_head_dim, R = kv_lora_rank, Q = q_lora_rank:

    attn_per_layer = d*H*qk                       (Q = 0: no query compression)
                   | d*Q + Q + Q*H*qk             (Q > 0: wq_a, the query latent's norm, wq_b)
                   + d*(R + rope) + R             # wkv_a (latent and the shared RoPE key), norm
                   + R*H*(nope + v_head_dim)      # wkv_b (keys' no-RoPE part and values)
                   + H*v_head_dim*d               # output
    KV cache per token per layer: R + rope elements (GQA: 2*n_kv_heads*head_dim).

The latent norms count as attention parameters (they sit inside the block, unlike the per-layer
RMSNorms). r and d/sqrt(N) keep their definitions with this attention count. An MLA spec has
n_kv_heads = n_heads (every query head has its own up-projected key and value) and
head_dim = qk (the query/key head width). The MLA fields default to zero (attention "gqa"), and a
run's identity leaves fields at their defaults out (lawsearch.rundir), so GQA runs keep their
directory names.

A mixture of experts (mlp="moe": Mixtral, Qwen3-MoE, OLMoE, DeepSeek-V3) replaces the MLP of
every layer after the first `first_dense_layers` (which keep the dense SwiGLU of width ffn_dim)
by E = n_experts routed SwiGLU experts of width f_e = expert_ffn_dim, of which each token uses
top_k, plus n_shared_experts experts of the same width that every token uses, and a router
(d x E, no bias). Per MoE layer, with e = 3*d*f_e:

    total  = E*e + n_shared*e + d*E          active = top_k*e + n_shared*e + d*E

N (non_embedding_params) counts every expert: what must be held. N_active
(active_non_embedding_params) counts what one token uses: what decode FLOPs cost. r is defined on
active parameters, the MoE analogue of the paper's: active MLP parameters over attention
parameters, summed over layers (a dense model's r). d/sqrt(N) is given on both N's. Granularity
G = ffn_dim / expert_ffn_dim: the dense-equivalent width over an expert's (Krajewski et al. 2024).
The chosen experts' router scores weight their outputs, renormalised to sum to 1
(norm_topk_prob, Mixtral, DeepSeek-V3) or as they are (Switch Transformer, OLMoE). Top-1 needs the
latter: one renormalised weight is always 1, and the LM loss never reaches the router.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import numpy as np

from lawsearch import inputs
from lawsearch.errors import UserError


ATTENTION_KINDS = ("gqa", "mla")
MLA_FIELDS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
MLP_KINDS = ("dense", "moe")
MOE_FIELDS = ("n_experts", "top_k", "expert_ffn_dim", "n_shared_experts", "first_dense_layers")
ROUTERS = ("softmax", "sigmoid")  # how router logits become weights (DeepSeek-V3: sigmoid)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """Shape of a LLaMA-style decoder (RMSNorm, RoPE, SwiGLU, GQA or MLA, no biases).

  The attention width n_heads*head_dim may differ from d_model (non-square q/k/v/o projections).
  attention="mla" uses the MLA fields (module docstring); they stay 0 for "gqa".
  """

  n_layers: int
  d_model: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  ffn_dim: int
  vocab_size: int
  tie_embeddings: bool = True
  attention: str = "gqa"
  kv_lora_rank: int = 0  # R: width of the cached KV latent
  q_lora_rank: int = 0  # Q: width of the query latent (0: queries straight from the residual)
  qk_nope_head_dim: int = 0  # per-head query/key width without RoPE (up-projected from the latent)
  qk_rope_head_dim: int = 0  # per-head query width with RoPE; the RoPE key is one shared head
  v_head_dim: int = 0  # per-head value width
  mlp: str = "dense"
  n_experts: int = 0  # E: routed experts per MoE layer
  top_k: int = 0  # routed experts each token uses
  expert_ffn_dim: int = 0  # f_e: each expert's SwiGLU width
  n_shared_experts: int = 0  # experts (of width f_e) every token uses
  first_dense_layers: int = 0  # leading layers with the dense MLP of width ffn_dim
  router: str = "softmax"  # router weights: softmax over the experts, or sigmoid (normalised)
  norm_topk_prob: bool = True  # renormalise the chosen experts' weights to sum to 1

  def __post_init__(self):
    for field in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                  "vocab_size"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise UserError(f"ArchSpec.{field} must be a positive integer, got {value!r}")
      object.__setattr__(self, field, int(value))
    for field in ("tie_embeddings", "norm_topk_prob"):
      value = getattr(self, field)
      if not isinstance(value, (bool, np.bool_)):
        raise UserError(f"ArchSpec.{field} must be True or False, got {value!r}")
      object.__setattr__(self, field, bool(value))
    if self.n_heads % self.n_kv_heads:
      divisors = [k for k in range(1, self.n_heads + 1) if self.n_heads % k == 0]
      raise UserError(
          f"ArchSpec.n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}; "
          f"valid n_kv_heads for n_heads={self.n_heads}: {divisors}")
    if self._check_kind("attention", ATTENTION_KINDS, MLA_FIELDS):
      self._check_mla()
    if self.router not in ROUTERS:
      raise UserError(f"ArchSpec.router={self.router!r}; choose one of {ROUTERS}")
    router = ([f"router={self.router!r}"] if self.router != "softmax" else []) + (
        [] if self.norm_topk_prob else ["norm_topk_prob=False"])
    if self._check_kind("mlp", MLP_KINDS, MOE_FIELDS, router):
      self._check_moe()

  def _check_kind(self, kind: str, kinds: tuple[str, str], fields: tuple[str, ...],
                  also_given: Sequence[str] = ()) -> bool:
    """Checks that ArchSpec.<kind> is one of `kinds` (the plain one first) and that `fields` are
    non-negative integers, all 0 for the plain kind (as `also_given`, settings of the other kind,
    must be empty). Returns whether the kind is the other one."""
    value = getattr(self, kind)
    if value not in kinds:
      raise UserError(f"ArchSpec.{kind}={value!r}; choose one of {kinds}")
    for field in fields:
      number = getattr(self, field)
      if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < 0:
        raise UserError(f"ArchSpec.{field} must be a non-negative integer, got {number!r}")
      object.__setattr__(self, field, int(number))
    if value != kinds[0]:
      return True
    given = [f"{f}={getattr(self, f)}" for f in fields if getattr(self, f)] + list(also_given)
    if given:
      raise UserError(f"{', '.join(given)} apply to {kind}='{kinds[1]}' only; set "
                      f"{kind}='{kinds[1]}' or drop them")
    return False

  def _check_moe(self):
    if self.n_experts < 1 or self.expert_ffn_dim < 1:
      raise UserError(f"mlp='moe' needs n_experts >= 1 and expert_ffn_dim >= 1, got "
                      f"n_experts={self.n_experts}, expert_ffn_dim={self.expert_ffn_dim}")
    if not 1 <= self.top_k <= self.n_experts:
      raise UserError(f"top_k={self.top_k}: each token uses between 1 and n_experts="
                      f"{self.n_experts} routed experts")
    if self.first_dense_layers >= self.n_layers:
      raise UserError(f"first_dense_layers={self.first_dense_layers} leaves no MoE layer of "
                      f"n_layers={self.n_layers}; lower it or use mlp='dense'")

  def _check_mla(self):
    for field in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
      if getattr(self, field) <= 0:
        raise UserError(f"attention='mla' needs a positive {field}, got {getattr(self, field)}")
    if self.qk_rope_head_dim % 2:
      raise UserError(f"RoPE needs an even qk_rope_head_dim, got {self.qk_rope_head_dim}")
    qk = self.qk_nope_head_dim + self.qk_rope_head_dim
    if self.head_dim != qk or self.n_kv_heads != self.n_heads:
      raise UserError(
          f"an MLA spec has head_dim = qk_nope_head_dim + qk_rope_head_dim = {qk} and n_kv_heads "
          f"= n_heads = {self.n_heads}, got head_dim={self.head_dim}, n_kv_heads="
          f"{self.n_kv_heads}; build it with arch.mla(...)")

  def __repr__(self) -> str:  # fields at their defaults (a GQA spec's MLA widths) left out
    defaults = {f.name: f.default for f in dataclasses.fields(self)}
    shown = {k: v for k, v in self.fields().items() if k == "tie_embeddings" or v != defaults[k]}
    return f"ArchSpec({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

  @property
  def is_mla(self) -> bool:
    return self.attention == "mla"

  def fields(self) -> dict:
    """The spec's fields as a dict, every one (a run's identity leaves out those at their
    defaults: lawsearch.rundir)."""
    return dataclasses.asdict(self)

  # -- widths ---------------------------------------------------------------------------------
  @property
  def attn_width(self) -> int:
    """Query/output projection width n_heads*head_dim (d_q in the paper's FLOPs formula)."""
    return self.n_heads * self.head_dim

  @property
  def kv_width(self) -> int:
    """Key (or value) projection width n_kv_heads*head_dim."""
    return self.n_kv_heads * self.head_dim

  @property
  def gqa(self) -> int:
    """Query heads per KV head ("GQA = g" in the paper)."""
    return self.n_heads // self.n_kv_heads

  # -- parameters -----------------------------------------------------------------------------
  @property
  def v_width(self) -> int:
    """Width of the heads' attention output, the output projection's input: n_heads*v_head_dim
    for MLA, attn_width for GQA."""
    return self.n_heads * self.v_head_dim if self.is_mla else self.attn_width

  @property
  def kv_cache_width(self) -> int:
    """Elements cached per token per layer: kv_lora_rank + qk_rope_head_dim for MLA (the latent
    and the shared RoPE key), 2*kv_width (K and V) for GQA."""
    return self.kv_lora_rank + self.qk_rope_head_dim if self.is_mla else 2 * self.kv_width

  @property
  def decode_score_width(self) -> int:
    """Multiply-adds per cached position for a decoding token's scores (q.k), over all heads.

    GQA: attn_width. MLA in the absorbed form (the query's no-RoPE part folded through wkv_b's
    key half into the latent space): n_heads*(kv_lora_rank + qk_rope_head_dim)."""
    if self.is_mla:
      return self.n_heads * (self.kv_lora_rank + self.qk_rope_head_dim)
    return self.attn_width

  @property
  def decode_value_width(self) -> int:
    """Multiply-adds per cached position for the probabilities times values (p.v), all heads:
    attn_width for GQA; n_heads*kv_lora_rank for MLA absorbed (values stay latent until wkv_b's
    value half is folded into the output projection)."""
    return self.n_heads * self.kv_lora_rank if self.is_mla else self.attn_width

  @property
  def attn_params_per_layer(self) -> int:
    if not self.is_mla:
      return 2 * self.d_model * self.attn_width + 2 * self.d_model * self.kv_width
    d, h, q = self.d_model, self.n_heads, self.q_lora_rank
    query = d * h * self.head_dim if q == 0 else d * q + q + q * h * self.head_dim
    kv_a = d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
    kv_b = self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
    return query + kv_a + kv_b + self.v_width * d

  @property
  def mlp_params_per_layer(self) -> int:
    """A dense layer's SwiGLU, 3*d*ffn_dim (every layer's when mlp='dense')."""
    return 3 * self.d_model * self.ffn_dim

  # -- mixture of experts (module docstring; zeros for a dense MLP) -----------------------------
  @property
  def is_moe(self) -> bool:
    return self.mlp == "moe"

  @property
  def moe_layers(self) -> int:
    return self.n_layers - self.first_dense_layers if self.is_moe else 0

  @property
  def expert_params(self) -> int:
    """One expert's SwiGLU, 3*d*expert_ffn_dim."""
    return 3 * self.d_model * self.expert_ffn_dim

  @property
  def router_params_per_layer(self) -> int:
    return self.d_model * self.n_experts

  @property
  def granularity(self) -> float:
    """G = ffn_dim / expert_ffn_dim (1 for a dense MLP)."""
    return self.ffn_dim / self.expert_ffn_dim if self.is_moe else 1.0

  def _mlp_params(self, experts_used: int) -> int:
    """MLP weights of all layers when each MoE layer uses `experts_used` routed experts."""
    moe = ((experts_used + self.n_shared_experts) * self.expert_params
           + self.router_params_per_layer)
    return (self.n_layers - self.moe_layers) * self.mlp_params_per_layer + self.moe_layers * moe

  @property
  def mlp_params(self) -> int:
    """MLP weights of all layers, every expert counted."""
    return self._mlp_params(self.n_experts)

  @property
  def active_mlp_params(self) -> int:
    """MLP weights of all layers that one token uses (top_k routed experts, shared, router)."""
    return self._mlp_params(self.top_k)

  @property
  def non_embedding_params(self) -> int:
    """N: attention and MLP weights of all layers, every expert (norms, embeddings excluded)."""
    return self.n_layers * self.attn_params_per_layer + self.mlp_params

  @property
  def active_non_embedding_params(self) -> int:
    """N_active: the attention and MLP weights one token uses (N for a dense MLP)."""
    return self.n_layers * self.attn_params_per_layer + self.active_mlp_params

  @property
  def embedding_params(self) -> int:
    """Token embedding, plus a separate output head when embeddings are not tied."""
    return self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)

  @property
  def norm_params(self) -> int:
    """RMSNorm scales: two per layer plus the final norm."""
    return (2 * self.n_layers + 1) * self.d_model

  @property
  def total_params(self) -> int:
    return self.non_embedding_params + self.embedding_params + self.norm_params

  @property
  def active_params(self) -> int:
    """Parameters one token uses, embeddings and norms included (total_params when dense)."""
    return self.active_non_embedding_params + self.embedding_params + self.norm_params

  @property
  def mlp_attn_ratio(self) -> float:
    """r = MLP parameters / attention parameters (MoE: active MLP parameters, all layers)."""
    if self.is_moe:
      return self.active_mlp_params / (self.n_layers * self.attn_params_per_layer)
    return self.mlp_params_per_layer / self.attn_params_per_layer

  @property
  def d_over_sqrt_n(self) -> float:
    """x = d_model / sqrt(N), the paper's normalised hidden size (N counting every expert)."""
    return self.d_model / math.sqrt(self.non_embedding_params)

  @property
  def d_over_sqrt_n_active(self) -> float:
    """d_model / sqrt(N_active) (d_over_sqrt_n for a dense MLP)."""
    return self.d_model / math.sqrt(self.active_non_embedding_params)

  def describe(self) -> dict:
    """Shape fields plus every derived number, for tables and JSON."""
    derived = ("attn_width", "kv_width", "gqa", "attn_params_per_layer", "mlp_params_per_layer",
               "non_embedding_params", "embedding_params", "norm_params", "total_params",
               "mlp_attn_ratio", "d_over_sqrt_n")
    if self.is_mla:
      derived += ("v_width", "kv_cache_width", "decode_score_width", "decode_value_width")
    if self.is_moe:
      derived += ("moe_layers", "expert_params", "granularity", "mlp_params", "active_mlp_params",
                  "active_non_embedding_params", "active_params", "d_over_sqrt_n_active")
    return {**self.fields(), **{name: getattr(self, name) for name in derived}}

  def replace(self, **changes) -> "ArchSpec":
    return dataclasses.replace(self, **changes)


# -- many shapes at once -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ShapeArrays:
  """The derived numbers of many architectures as arrays, one entry per architecture.

  Built from integer specs by `stack`, or from a continuous relaxation by `relaxed` (then the
  arrays may be jax arrays, differentiable in x and r). `lawsearch.cost` computes on either, as it
  does on a single `ArchSpec`: same attribute names, arithmetic only.
  """

  n_layers: Any
  d_model: Any
  attn_width: Any
  kv_width: Any
  ffn_dim: Any
  vocab_size: Any
  non_embedding_params: Any
  norm_params: Any
  embedding_params: Any
  attn_params_per_layer: Any
  v_width: Any
  kv_cache_width: Any
  decode_score_width: Any
  decode_value_width: Any
  active_non_embedding_params: Any
  moe_layers: Any
  n_experts: Any
  top_k: Any
  expert_params: Any

  @property
  def total_params(self):
    return self.non_embedding_params + self.embedding_params + self.norm_params

  @property
  def mlp_attn_ratio(self):
    # 3*d*ffn / attn, written so that GQA's attn/d = 2*(attn_width + kv_width) is exact
    return (3 * self.ffn_dim) / (self.attn_params_per_layer / self.d_model)

  @property
  def d_over_sqrt_n(self):
    return self.d_model / self.non_embedding_params ** 0.5


def stack(specs: Sequence[ArchSpec]) -> ShapeArrays:
  """`ShapeArrays` (float64 numpy) of a list of specs, derived through `ArchSpec` itself."""
  names = [f.name for f in dataclasses.fields(ShapeArrays)]
  return ShapeArrays(**{n: np.array([getattr(s, n) for s in specs], np.float64) for n in names})


def relaxed(n_params, *, n_layers: int, head_dim: int, x, r, gqa, vocab_size: int,
            tie_embeddings: bool = True) -> ShapeArrays:
  """The continuous architecture with N = n_params, d/sqrt(N) = x and MLP/attention ratio r.

  Head counts and ffn_dim are real numbers here (the relaxation the search optimises over before
  projecting onto integer shapes); the accounting is `ArchSpec`'s, solved for the widths:
  attn = N/L/(1+r) = 2*d*(n_heads + n_kv_heads)*head_dim, mlp = r*attn = 3*d*ffn_dim.
  Works on numpy or jax arrays.
  """
  d = x * n_params ** 0.5
  attn = n_params / n_layers / (1.0 + r)
  heads_total = attn / (2.0 * d * head_dim)  # n_heads + n_kv_heads
  n_kv = heads_total / (gqa + 1.0)
  attn_width = gqa * n_kv * head_dim
  return ShapeArrays(
      n_layers=n_layers + 0.0 * d, d_model=d, attn_width=attn_width,
      kv_width=n_kv * head_dim, ffn_dim=r * attn / (3.0 * d), vocab_size=vocab_size + 0.0 * d,
      non_embedding_params=n_params + 0.0 * d, norm_params=(2 * n_layers + 1) * d,
      embedding_params=vocab_size * d * (1 if tie_embeddings else 2),
      attn_params_per_layer=attn + 0.0 * d, v_width=attn_width, kv_cache_width=2 * n_kv * head_dim,
      decode_score_width=attn_width, decode_value_width=attn_width,
      active_non_embedding_params=n_params + 0.0 * d, moe_layers=0.0 * d, n_experts=0.0 * d,
      top_k=0.0 * d, expert_params=0.0 * d)


def mixture(spec: ArchSpec, experts: int, granularity: int) -> ArchSpec:
  """`spec` (a dense shape) as a mixture of experts of the same active size: `experts` experts of
  width ffn_dim / granularity, each token using `granularity` of them (top-k = G), so one token
  uses as many MLP weights as the dense shape (plus the router's d_model x experts per layer).
  Top-1 weights its expert by the router's probability (Switch Transformer), top-k > 1 by the
  renormalised ones (Mixtral). UserError unless 1 <= granularity < experts and granularity divides
  ffn_dim."""
  if spec.is_moe:
    raise UserError(f"{spec} is already a mixture of experts")
  if not 1 <= granularity < experts or spec.ffn_dim % granularity:
    raise UserError(f"a mixture of {experts} experts at granularity {granularity} needs "
                    f"1 <= granularity < experts and granularity dividing ffn_dim={spec.ffn_dim}")
  return spec.replace(mlp="moe", n_experts=experts, top_k=granularity,
                      expert_ffn_dim=spec.ffn_dim // granularity, norm_topk_prob=granularity > 1)


def experts_touched(n_experts, top_k, batch):
  """Expected distinct routed experts that `batch` tokens use when each picks `top_k` of
  `n_experts` uniformly and independently: E * (1 - (1 - k/E)^B) (k at B = 1, E as B grows; 0
  for a dense MLP, E = 0). Real routers are not uniform; skewed routing touches fewer."""
  safe = n_experts + (n_experts == 0)  # arithmetic only: numpy, jax or Python numbers
  return n_experts * (1.0 - (1.0 - top_k / safe) ** batch)


# -- GQA at exact parameter count ----------------------------------------------------------------
def exact_param_gqa_values(spec: ArchSpec) -> list[int]:
  """GQA values reachable at fixed d_model and ffn_dim with the parameter count unchanged.

  Attention parameters are 2*d*head_dim*(n_heads + n_kv_heads) = 2*d*head_dim*n_kv*(g + 1), so the
  head total H = n_heads + n_kv_heads is preserved exactly iff (g + 1) divides H.
  """
  total_heads = spec.n_heads + spec.n_kv_heads
  return [g for g in range(1, total_heads) if total_heads % (g + 1) == 0]


def with_gqa(spec: ArchSpec, gqa: int) -> ArchSpec:
  """`spec` with `gqa` query heads per KV head and exactly the same parameter count."""
  total_heads = spec.n_heads + spec.n_kv_heads
  if gqa not in exact_param_gqa_values(spec):
    raise UserError(
        f"gqa={gqa} cannot keep the parameter count of a model with {total_heads} heads in all "
        f"(n_heads + n_kv_heads); valid gqa values: {exact_param_gqa_values(spec)}")
  n_kv = total_heads // (gqa + 1)
  return spec.replace(n_heads=n_kv * gqa, n_kv_heads=n_kv)


# -- builders from a budget ----------------------------------------------------------------------
def _check_budget(n_params: float, n_layers: int, head_dim: int) -> None:
  if not inputs.ARGUMENTS["positive"][0](n_params):
    raise UserError(f"parameter budget must be a positive number, got {n_params!r}")
  for name, value in (("n_layers", n_layers), ("head_dim", head_dim)):
    if int(value) != value or value <= 0:
      raise UserError(f"{name} must be a positive integer, got {value!r}")


def from_budget(n_params: float, *, n_layers: int, head_dim: int, d_model: int, r: float,
                gqa: int, vocab_size: int = 128256, ffn_step: int = 256,
                tie_embeddings: bool = True) -> ArchSpec:
  """The integer architecture nearest to (N = n_params, r) at the given depth, width and GQA.

  n_heads is a multiple of `gqa`, ffn_dim a multiple of `ffn_step`. Among the neighbouring integer
  shapes, the one minimising (relative N error)^2 + (log r error)^2 is returned; read the achieved
  N and r off the result (`.non_embedding_params`, `.mlp_attn_ratio`).
  """
  _check_budget(n_params, n_layers, head_dim)
  if not r > 0:
    raise UserError(f"r (MLP-to-attention ratio) must be positive, got {r!r}")
  per_layer = n_params / n_layers
  attn_target = per_layer / (1.0 + r)
  n_heads_real = attn_target / (2 * d_model * head_dim * (1.0 + 1.0 / gqa))
  best, best_err = None, math.inf
  for n_kv in {max(1, math.floor(n_heads_real / gqa)), max(1, math.ceil(n_heads_real / gqa))}:
    attn = 2 * d_model * head_dim * n_kv * (gqa + 1)
    ffn_real = max(per_layer - attn, 0.0) / (3 * d_model) / ffn_step
    for k in {max(1, math.floor(ffn_real)), max(1, math.ceil(ffn_real))}:
      spec = ArchSpec(n_layers, d_model, n_kv * gqa, n_kv, head_dim, k * ffn_step, vocab_size,
                      tie_embeddings)
      err = ((spec.non_embedding_params - n_params) / n_params) ** 2 + math.log(
          spec.mlp_attn_ratio / r) ** 2
      if err < best_err:
        best, best_err = spec, err
  return best


def sweep_grid(n_params: float, *, n_layers: int, head_dim: int, gqa: int,
               x_grid: Iterable[float], r_grid: Iterable[float], vocab_size: int = 128256,
               ffn_step: int = 256, d_step: int = 0, n_tolerance: float = 0.05,
               r_tolerance: float = 0.1, mla: "MlaDims | None" = None
               ) -> list[tuple[float, float, ArchSpec]]:
  """The buildable shapes of a training sweep at one scale: (x target, r target, ArchSpec).

  For each target d/sqrt(N) = x (d_model rounded to a multiple of d_step, default head_dim) and
  MLP-to-attention
  ratio r, the nearest integer shape (`from_budget`); kept when its N is within `n_tolerance`
  (relative) of n_params and its r within `r_tolerance` (in log) of the target; each shape once.
  With `mla`, MLA shapes of that family (`mla_from_budget`; gqa and head_dim unused).
  """
  out, seen = [], set()
  d_step = d_step or head_dim
  for x in x_grid:
    d = max(d_step, int(round(x * math.sqrt(n_params) / d_step)) * d_step)
    for r in r_grid:
      if mla is None:
        spec = from_budget(n_params, n_layers=n_layers, head_dim=head_dim, d_model=d, r=r,
                           gqa=gqa, vocab_size=vocab_size, ffn_step=ffn_step)
      else:
        spec = mla_from_budget(n_params, n_layers=n_layers, d_model=d, r=r, dims=mla,
                               vocab_size=vocab_size, ffn_step=ffn_step)
      if (abs(spec.non_embedding_params / n_params - 1) > n_tolerance
          or abs(math.log(spec.mlp_attn_ratio / r)) > r_tolerance or spec in seen):
        continue  # no integer shape close to this (N, r) at this width, or one already kept
      seen.add(spec)
      out.append((x, r, spec))
  return out


# The most shapes one enumeration builds (a Python object each, then scored): about 15 s and
# 150 MB on one core. The paper's 1B search has about 6,000; 70B at 80 layers about 40,000.
MAX_CANDIDATES = 300_000


def enumeration_size(n_params: float, n_layers: int, d_models: Sequence[int], variants: int,
                     ffn_step: int) -> int:
  """How many shapes `enumerate_candidates` (or the MLA one) would try at most: for each d_model
  every ffn_dim that fits the layer's budget, times `variants` (GQA values, or MLA widths).
  Arithmetic only: it runs before anything is allocated."""
  per_layer = n_params / n_layers
  return variants * sum(int(per_layer / (3 * d * ffn_step)) for d in d_models)


def check_enumeration_size(n_params: float, n_layers: int, d_models: Sequence[int],
                           variants: int, ffn_step: int) -> None:
  """A UserError naming the size and how to narrow the grid when an enumeration would try more
  than MAX_CANDIDATES shapes."""
  size = enumeration_size(n_params, n_layers, d_models, variants, ffn_step)
  if size > MAX_CANDIDATES:
    raise UserError(
        f"the search grid at N = {n_params:.4g} holds about {size:.3g} shapes ({len(d_models)} "
        f"d_model values x ffn_dim steps of {ffn_step} x {variants} attention variants over "
        f"{n_layers} layers), more than the {MAX_CANDIDATES:,} lawsearch enumerates (memory and "
        "time); narrow it: more layers (--layers), a larger head_dim (--head-dim: a coarser "
        "d_model grid), or in Python fewer d_models, a larger ffn_step or fewer gqas")


def enumerate_candidates(n_params: float, *, n_layers: int, head_dim: int,
                         d_models: Iterable[int], gqas: Sequence[int] = (1, 2, 4, 8),
                         ffn_step: int = 256, tolerance: float = 0.01, vocab_size: int = 128256,
                         tie_embeddings: bool = True) -> list[ArchSpec]:
  """Every architecture with N within `tolerance` (relative) of `n_params`.

  Grids: d_model over `d_models`, ffn_dim over multiples of `ffn_step`, GQA over `gqas`. For each
  (d_model, ffn_dim, gqa) the head count closest to the budget is taken (n_heads a multiple of gqa).
  """
  _check_budget(n_params, n_layers, head_dim)
  if not 0 < tolerance < 1:
    raise UserError(f"tolerance is a relative error in (0, 1), got {tolerance!r}")
  d_models, gqas = list(d_models), list(gqas)
  for name, value in (("d_models", d_models), ("gqas", gqas)):
    inputs.argument(value, name, "integers", "enumerate_candidates")
  inputs.argument(ffn_step, "ffn_step", "positive integer", "enumerate_candidates")
  check_enumeration_size(n_params, n_layers, d_models, len(gqas), ffn_step)
  per_layer = n_params / n_layers
  out = []
  for d in d_models:
    max_steps = int(per_layer / (3 * d * ffn_step))
    for g in gqas:
      head_group = 2 * d * head_dim * (g + 1)  # attention parameters per KV head
      for k in range(1, max_steps + 1):
        n_kv = round((per_layer - 3 * d * k * ffn_step) / head_group)
        if n_kv < 1:
          continue
        spec = ArchSpec(n_layers, d, n_kv * g, n_kv, head_dim, k * ffn_step, vocab_size,
                        tie_embeddings)
        if abs(spec.non_embedding_params - n_params) <= tolerance * n_params:
          out.append(spec)
  return out


# -- multi-head latent attention -----------------------------------------------------------------
def mla(n_layers: int, d_model: int, n_heads: int, ffn_dim: int, vocab_size: int, *,
        kv_lora_rank: int, qk_nope_head_dim: int, qk_rope_head_dim: int, v_head_dim: int,
        q_lora_rank: int = 0, tie_embeddings: bool = True) -> ArchSpec:
  """An MLA `ArchSpec` (n_kv_heads = n_heads and head_dim = nope + rope filled in)."""
  return ArchSpec(n_layers, d_model, n_heads, n_heads, qk_nope_head_dim + qk_rope_head_dim,
                  ffn_dim, vocab_size, tie_embeddings, attention="mla", kv_lora_rank=kv_lora_rank,
                  q_lora_rank=q_lora_rank, qk_nope_head_dim=qk_nope_head_dim,
                  qk_rope_head_dim=qk_rope_head_dim, v_head_dim=v_head_dim)


def moe(spec: ArchSpec, *, n_experts: int, top_k: int, expert_ffn_dim: int,
        n_shared_experts: int = 0, first_dense_layers: int = 0,
        router: str = "softmax") -> ArchSpec:
  """`spec` with a mixture of experts in every layer after the first `first_dense_layers` (which
  keep spec's dense MLP of width ffn_dim)."""
  return spec.replace(mlp="moe", n_experts=n_experts, top_k=top_k, expert_ffn_dim=expert_ffn_dim,
                      n_shared_experts=n_shared_experts, first_dense_layers=first_dense_layers,
                      router=router)


@dataclasses.dataclass(frozen=True)
class MlaDims:
  """The per-head and latent widths of an MLA family (everything but d_model, heads, ffn_dim)."""

  kv_lora_rank: int
  qk_nope_head_dim: int
  qk_rope_head_dim: int
  v_head_dim: int
  q_lora_rank: int = 0

  def spec(self, n_layers: int, d_model: int, n_heads: int, ffn_dim: int, vocab_size: int,
           tie_embeddings: bool = True) -> ArchSpec:
    return mla(n_layers, d_model, n_heads, ffn_dim, vocab_size, tie_embeddings=tie_embeddings,
               **dataclasses.asdict(self))

  def attn_params(self, d_model: int, n_heads: float) -> float:
    """Attention parameters per layer at `n_heads` (real-valued: the count is a*n_heads + b)."""
    one = self.spec(1, d_model, 1, 1, 1).attn_params_per_layer
    two = self.spec(1, d_model, 2, 1, 1).attn_params_per_layer
    return one + (two - one) * (n_heads - 1)


def mla_from_budget(n_params: float, *, n_layers: int, d_model: int, r: float, dims: MlaDims,
                    vocab_size: int = 128256, ffn_step: int = 256,
                    tie_embeddings: bool = True) -> ArchSpec:
  """The MLA shape nearest to (N = n_params, r) at this depth and width: n_heads and ffn_dim (a
  multiple of ffn_step) minimising (relative N error)^2 + (log r error)^2, as `from_budget`."""
  _check_budget(n_params, n_layers, dims.qk_nope_head_dim + dims.qk_rope_head_dim)
  if not r > 0:
    raise UserError(f"r (MLP-to-attention ratio) must be positive, got {r!r}")
  per_layer = n_params / n_layers
  one, slope = dims.attn_params(d_model, 1), dims.attn_params(d_model, 2) - dims.attn_params(
      d_model, 1)
  heads_real = 1 + (per_layer / (1.0 + r) - one) / slope
  best, best_err = None, math.inf
  for heads in {max(1, math.floor(heads_real)), max(1, math.ceil(heads_real))}:
    ffn_real = max(per_layer - dims.attn_params(d_model, heads), 0.0) / (3 * d_model) / ffn_step
    for k in {max(1, math.floor(ffn_real)), max(1, math.ceil(ffn_real))}:
      spec = dims.spec(n_layers, d_model, heads, k * ffn_step, vocab_size, tie_embeddings)
      err = ((spec.non_embedding_params - n_params) / n_params) ** 2 + math.log(
          spec.mlp_attn_ratio / r) ** 2
      if err < best_err:
        best, best_err = spec, err
  return best


def enumerate_mla_candidates(n_params: float, *, n_layers: int, d_models: Iterable[int],
                             dims: Sequence[MlaDims], ffn_step: int = 256,
                             tolerance: float = 0.01, vocab_size: int = 128256,
                             tie_embeddings: bool = True) -> list[ArchSpec]:
  """Every MLA shape with N within `tolerance` (relative) of `n_params`: d_model over `d_models`,
  the latent and head widths over `dims` (e.g. a grid of kv_lora_rank), ffn_dim over multiples of
  `ffn_step`, and for each the head count closest to the budget."""
  if not 0 < tolerance < 1:
    raise UserError(f"tolerance is a relative error in (0, 1), got {tolerance!r}")
  d_models, dims = list(d_models), list(dims)
  inputs.argument(d_models, "d_models", "integers", "enumerate_mla_candidates")
  inputs.argument(ffn_step, "ffn_step", "positive integer", "enumerate_mla_candidates")
  check_enumeration_size(n_params, n_layers, d_models, len(dims), ffn_step)
  per_layer = n_params / n_layers
  out = []
  for d in d_models:
    for dim in dims:
      _check_budget(n_params, n_layers, dim.qk_nope_head_dim + dim.qk_rope_head_dim)
      one = dim.attn_params(d, 1)
      slope = dim.attn_params(d, 2) - one
      for k in range(1, int(per_layer / (3 * d * ffn_step)) + 1):
        heads = 1 + round((per_layer - 3 * d * k * ffn_step - one) / slope)
        if heads < 1:
          continue
        spec = dim.spec(n_layers, d, heads, k * ffn_step, vocab_size, tie_embeddings)
        if abs(spec.non_embedding_params - n_params) <= tolerance * n_params:
          out.append(spec)
  return out


# -- named presets -------------------------------------------------------------------------------
_LLAMA3_VOCAB = 128256
_QWEN3_VOCAB = 151936

PRESETS: dict[str, ArchSpec] = {
    # The paper's Table 1 / Table 2 models (d_head 64 at 1B, 128 at 3B).
    "llama3.2-1b": ArchSpec(16, 2048, 32, 8, 64, 8192, _LLAMA3_VOCAB),
    "panda-1b": ArchSpec(16, 2560, 72, 18, 64, 4096, _LLAMA3_VOCAB),
    "surefire-1b": ArchSpec(16, 2560, 36, 4, 64, 6144, _LLAMA3_VOCAB),
    "llama3.2-3b": ArchSpec(28, 3072, 24, 8, 128, 8192, _LLAMA3_VOCAB),
    "panda-3b": ArchSpec(28, 4096, 36, 12, 128, 4096, _LLAMA3_VOCAB),
    "surefire-3b": ArchSpec(28, 4096, 42, 6, 128, 4096, _LLAMA3_VOCAB),
    "panda-3b-o": ArchSpec(28, 4096, 33, 11, 128, 4608, _LLAMA3_VOCAB),
    # LLaMA-3.1 (public config.json files; untied output head) and SmolLM, LLaMA-architecture
    # models at 135M and 360M (public config.json files; tied): the family of `lawsearch.regimes`.
    "smollm-135m": ArchSpec(30, 576, 9, 3, 64, 1536, 49152),
    "smollm-360m": ArchSpec(32, 960, 15, 5, 64, 2560, 49152),
    "llama3.1-8b": ArchSpec(32, 4096, 32, 8, 128, 14336, _LLAMA3_VOCAB, tie_embeddings=False),
    "llama3.1-70b": ArchSpec(80, 8192, 64, 8, 128, 28672, _LLAMA3_VOCAB, tie_embeddings=False),
    "llama3.1-405b": ArchSpec(126, 16384, 128, 8, 128, 53248, _LLAMA3_VOCAB,
                              tie_embeddings=False),
    # Qwen3 dense models, from their public config.json files (their per-head q/k RMSNorms are
    # not part of this architecture family and are not counted).
    "qwen3-0.6b": ArchSpec(28, 1024, 16, 8, 128, 3072, _QWEN3_VOCAB),
    "qwen3-1.7b": ArchSpec(28, 2048, 16, 8, 128, 6144, _QWEN3_VOCAB),
    "qwen3-4b": ArchSpec(36, 2560, 32, 8, 128, 9728, _QWEN3_VOCAB),
    "qwen3-8b": ArchSpec(36, 4096, 32, 8, 128, 12288, _QWEN3_VOCAB, tie_embeddings=False),
    # Tiny models for CPU work and tests (vocabulary of the locally trained BPE).
    "nano": ArchSpec(2, 64, 4, 2, 16, 192, 512),
    "tiny": ArchSpec(4, 256, 8, 2, 32, 512, 4096),
    "tiny-wide": ArchSpec(4, 320, 6, 1, 32, 768, 4096),
    # An 80M-scale model (the paper's smallest scale; depth and width are our choice).
    "s80m": ArchSpec(12, 768, 12, 4, 64, 2048, _LLAMA3_VOCAB),
    # DeepSeek-V2-Lite's and DeepSeek-V3's attention (MLA) from their public config.json files,
    # with a dense MLP of their dense layers' intermediate_size (MoE is not in this family).
    "deepseek-v2-lite-dense": mla(27, 2048, 16, 10944, 102400, kv_lora_rank=512,
                                  qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                                  tie_embeddings=False),
    "deepseek-v3-dense": mla(61, 7168, 128, 18432, 129280, kv_lora_rank=512, q_lora_rank=1536,
                             qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                             tie_embeddings=False),
    # Mixtures of experts (the models' config.json files; QK norms are left out, as every norm):
    # Mixtral-8x7B (ffn_dim = the expert width: granularity 1), Qwen3-30B-A3B (ffn_dim its
    # config's dense intermediate_size 6144: granularity 8), OLMoE-1B-7B, and DeepSeek-V3
    # without its multi-token-prediction module (3 dense layers of 18432, then 256 routed experts
    # and 1 shared, top-8, sigmoid router).
    "mixtral-8x7b": moe(ArchSpec(32, 4096, 32, 8, 128, 14336, 32000, tie_embeddings=False),
                        n_experts=8, top_k=2, expert_ffn_dim=14336),
    "qwen3-30b-a3b": moe(ArchSpec(48, 2048, 32, 4, 128, 6144, 151936, tie_embeddings=False),
                         n_experts=128, top_k=8, expert_ffn_dim=768),
    "olmoe-1b-7b": moe(ArchSpec(16, 2048, 16, 16, 128, 1024, 50304, tie_embeddings=False),
                       n_experts=64, top_k=8, expert_ffn_dim=1024),
    "deepseek-v3": moe(mla(61, 7168, 128, 18432, 129280, kv_lora_rank=512, q_lora_rank=1536,
                           qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                           tie_embeddings=False),
                       n_experts=256, top_k=8, expert_ffn_dim=2048, n_shared_experts=1,
                       first_dense_layers=3, router="sigmoid"),
    # A tiny MLA model for CPU work and tests.
    "nano-mla": mla(2, 64, 4, 192, 512, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                    v_head_dim=16),
}


def load_json(path: str) -> ArchSpec:
  """An ArchSpec from a JSON file of its fields (extra keys, e.g. derived numbers, are ignored)."""
  doc = inputs.read_json(path, "architecture file")
  fields = {f.name: "integer" for f in dataclasses.fields(ArchSpec)[:7]}  # the GQA shape
  inputs.require(doc, f"architecture file {path}", fields)
  try:
    return from_fields(doc)
  except UserError as e:
    raise UserError(f"architecture file {path}: {e}") from None


def field_defaults() -> dict[str, Any]:
  """ArchSpec field -> its default, for every field that has one (a run's identity leaves fields
  at these out; a record written before a field existed trained at its default)."""
  return {f.name: f.default for f in dataclasses.fields(ArchSpec)
          if f.default is not dataclasses.MISSING}


def from_fields(record) -> ArchSpec:
  """An ArchSpec from a mapping that holds its fields (a JSON document, a benchmark record, a runs
  table's row); other keys are ignored. A field that is missing, None or NaN (a table's row from a
  record written before the field existed) takes its default, and a whole float where an integer
  is due (a table column with gaps) is read as that integer."""
  given = {}
  for f in dataclasses.fields(ArchSpec):
    value = record.get(f.name) if hasattr(record, "get") else record[f.name]
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
      continue
    if (f.type == "int" and isinstance(value, (float, np.floating))
        and float(value).is_integer()):
      value = int(value)
    given[f.name] = value
  return ArchSpec(**given)


def preset(name: str) -> ArchSpec:
  """A named architecture; unknown names raise an error listing the known ones."""
  inputs.argument(name, "name", "string", "arch.preset")
  try:
    return PRESETS[name.lower()]
  except KeyError:
    raise UserError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
