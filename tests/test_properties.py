"""Property-based tests (hypothesis) of the parts that take numbers from users: valid input gives
finite, positive, consistent results; invalid input gives a UserError that says what is wrong,
never another exception."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from lawsearch import arch, configlib, cost, search
from lawsearch.errors import UserError
from lawsearch.laws import ConditionalLaw

FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size")
small = st.integers(1, 64)
anything = st.one_of(st.integers(-5, 70), st.floats(allow_nan=True), st.none(), st.text(max_size=3),
                     st.booleans())


@st.composite
def specs(draw):
  """Valid ArchSpecs: n_kv_heads divides n_heads."""
  n_kv = draw(st.integers(1, 16))
  return arch.ArchSpec(draw(st.integers(1, 48)), draw(st.integers(8, 8192)),
                       n_kv * draw(st.integers(1, 16)), n_kv, 2 * draw(st.integers(1, 128)),
                       draw(st.integers(1, 32768)), draw(st.integers(2, 256_000)),
                       draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(specs())
def test_valid_specs_have_consistent_positive_accounting(spec):
  n = spec.non_embedding_params
  assert n == spec.n_layers * (spec.attn_params_per_layer + spec.mlp_params_per_layer) > 0
  assert spec.total_params == n + spec.embedding_params + spec.norm_params > n
  assert spec.mlp_attn_ratio > 0 and spec.d_over_sqrt_n > 0
  assert spec.gqa * spec.n_kv_heads == spec.n_heads


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({f: anything for f in FIELDS}))
def test_any_field_values_construct_or_raise_a_user_error(fields):
  try:
    spec = arch.ArchSpec(**fields)
  except UserError as e:
    assert "ArchSpec." in str(e)
    return
  assert all(getattr(spec, f) >= 1 for f in FIELDS)


@settings(max_examples=150, deadline=None)
@given(specs(), st.sampled_from(sorted(cost.HARDWARE)), st.integers(1, 512),
       st.integers(1, 8192), st.integers(1, 2048))
def test_the_cost_model_is_finite_and_positive_on_valid_input(spec, hw, batch, input_len,
                                                              output_len):
  t = cost.roofline_throughput(spec, hw, batch, input_len, output_len)
  assert math.isfinite(t.prefill_s) and t.prefill_s > 0 and math.isfinite(t.decode_s)
  assert t.decode_s >= 0 and (t.decode_s > 0) == (output_len > 1)
  assert (t.output_tokens_per_s > 0) == t.fits and t.max_batch >= 0
  b = cost.decode_breakdown(spec, hw, batch, input_len)
  for what in ("flops", "bytes", "time"):
    shares = b.shares(what)
    assert all(v >= 0 for v in shares.values()) and sum(shares.values()) == pytest.approx(1)
  assert cost.inference_flops_per_token(spec, input_len + 1) > cost.inference_flops_per_token(
      spec, input_len)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([0, -1, 1.5, float("nan")]), st.sampled_from(["batch", "input_len",
                                                                        "output_len"]))
def test_the_cost_model_refuses_bad_scenarios(value, name):
  scenario = {"batch": 8, "input_len": 128, "output_len": 16, name: value}
  with pytest.raises(UserError, match=name):
    cost.roofline_throughput(arch.preset("tiny"), "h200", **scenario)
  with pytest.raises(UserError, match=name):
    search.RooflineEfficiency("h200", **scenario)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.floats(1e5, 1e11), st.integers(1, 64), st.sampled_from([32, 64, 128]),
       st.floats(0.03, 0.3), st.floats(0.5, 6.0), st.sampled_from([1, 2, 4, 8]))
def test_from_budget_lands_near_the_budget(n_params, n_layers, head_dim, x, r, gqa):
  d_model = max(head_dim, int(round(x * math.sqrt(n_params) / head_dim)) * head_dim)
  try:
    spec = arch.from_budget(n_params, n_layers=n_layers, head_dim=head_dim, d_model=d_model,
                            r=r, gqa=gqa, ffn_step=8)
  except UserError:
    return  # a budget too small for the depth: said so
  # The nearest integer shape is off by at most one KV group and one ffn step per layer, or by
  # the smallest layer (one KV group, one ffn step) when the budget is below it.
  group = 2 * d_model * head_dim * (gqa + 1)
  slack = n_layers * (group + 3 * d_model * 8)
  assert abs(spec.non_embedding_params - n_params) <= slack + n_params * 0.5 or (
      spec.non_embedding_params <= n_layers * (group + 3 * d_model * 8))
  assert spec.gqa == gqa and spec.ffn_dim % 8 == 0


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 0)),
       st.sampled_from(["n_params", "tokens", "tolerance", "head_dim", "max_gqa"]))
def test_search_refuses_bad_numbers_before_any_work(value, name):
  args = {"n_params": 1e9, "tokens": 1e11, "tolerance": 0.01, "head_dim": 64, "max_gqa": 16}
  valid = {"n_params": lambda v: 0 < v <= search.MAX_PARAMS, "tokens": lambda v: 0 < v < math.inf,
           "tolerance": lambda v: 0 < v < 1, "head_dim": lambda v: False,
           "max_gqa": lambda v: False}
  assume(not (isinstance(value, float) and math.isfinite(value) and valid[name](value)))
  args[name] = value
  with pytest.raises(UserError, match=name):
    search.search(ConditionalLaw.paper("80m-297m"), args["n_params"], args["tokens"], 16,
                  args["head_dim"], baseline="llama3.2-1b", tolerance=args["tolerance"],
                  max_gqa=args["max_gqa"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdrx=,.+0123456789 _-", max_size=30))
def test_the_config_parser_parses_or_says_why(text):
  spec = {"a": 1, "b": 0.5, "r": "x", "d": False}
  try:
    cfg = configlib.parse_arg(text, **spec)
  except UserError as e:
    assert str(e)
    return
  assert set(cfg.keys()) == set(spec)
  assert isinstance(cfg.a, int) and isinstance(cfg.b, float) and isinstance(cfg.d, bool)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["train.steps", "train.batch_size", "optimizer.peak_lr", "model.preset",
                        "train.nope", "nope.steps", "train"]),
       st.text(alphabet="0123456789.-eabc[]", max_size=8))
def test_config_overrides_apply_or_say_why(key, value):
  config = configlib.load("configs/train.py:preset=nano,data=synthetic")
  try:
    configlib.apply_override(config, f"--config.{key}={value}")
  except UserError as e:
    assert key.split(".")[-1] in str(e) or value in str(e) or "config" in str(e)
    return
  leaf = config
  for part in key.split("."):
    leaf = leaf[part]
  assert leaf is not None


def test_search_on_small_valid_budgets_gives_finite_picks():
  rng = np.random.default_rng(0)
  for n_params in rng.uniform(2e5, 2e6, 3):
    baseline = arch.from_budget(n_params, n_layers=4, head_dim=16, d_model=64, r=3.0, gqa=4,
                                vocab_size=512, ffn_step=8)
    result = search.search(ConditionalLaw.paper("80m-297m"), n_params, 20 * n_params, 4, 16,
                           baseline=baseline, gqas=(1, 2, 4), ffn_step=8, vocab_size=512,
                           efficiency=search.RooflineEfficiency("h200", 8, 128, 16),
                           d_models=list(range(32, 400, 8)))
    spot = result.locate(result.surefire)
    assert spot["meets_target"] and math.isfinite(spot["efficiency"]) and spot["efficiency"] > 0
