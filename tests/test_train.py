"""lawsearch.train: schedule, sharding rules, sharded vs unsharded steps, gradient accumulation,
config parsing and validation (8 fake CPU devices, nano model)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lawsearch import configlib
from lawsearch.arch import preset
from lawsearch.errors import UserError
from lawsearch.model import ModelConfig
from lawsearch.train import loop
from lawsearch.train import mesh as mesh_lib
from lawsearch.train import optimizer
from lawsearch.train import step as step_lib
from lawsearch.recipe import PAPER

CONFIG = "configs/train.py:preset=nano,data=synthetic"
RULES = configlib.load(CONFIG).sharding_rules


# -- optimizer -------------------------------------------------------------------------------------
def test_schedule_warmup_then_cosine_to_ten_percent():
  lr = optimizer.learning_rate(1e-3, warmup_steps=10, total_steps=110)
  # Linear warmup reaches the peak at the last warmup step; the cosine midpoint is
  # 0.1 + 0.9/2 of the peak; the end is exactly 10% of the peak.
  np.testing.assert_allclose([lr(0), lr(9), lr(10), lr(60), lr(110), lr(500)],
                             [1e-4, 1e-3, 1e-3, 1e-3 * 0.55, 1e-4, 1e-4], rtol=1e-6)


@pytest.mark.parametrize("peak,warmup,total,floor", [(3e-3, 0, 50, 0.1), (3e-3, 1, 50, 0.0),
                                                    (3.5e-3, 20, 395, 0.1), (1e-3, 2, 5, 0.5)])
def test_schedule_matches_its_closed_form_in_float64(peak, warmup, total, floor):
  lr = optimizer.learning_rate(peak, warmup, total, floor)
  steps = np.arange(total + 10, dtype=np.float64)
  progress = np.clip(steps - warmup, 0, total - warmup) / (total - warmup)
  want = np.where(steps < warmup, peak * (steps + 1) / max(warmup, 1),
                  peak * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress))))
  got = np.array([float(lr(int(s))) for s in steps])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=peak * 1e-6)  # float32 arithmetic


def test_schedule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="warmup_steps"):
    optimizer.learning_rate(1e-3, warmup_steps=10, total_steps=10)


def test_weight_decay_skips_norm_scales():
  mask = optimizer.decay_mask({"w": jnp.ones((2, 2)), "scale": jnp.ones(2)})
  assert mask == {"w": True, "scale": False}


# -- sharded step ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup():
  model = step_lib.Model(ModelConfig(preset("nano"), max_seq_len=32))
  opt = dict(peak_lr=1e-3, warmup_steps=1, final_lr_fraction=0.1, b1=0.9, b2=0.95, eps=1e-8,
             weight_decay=0.1, clip_norm=1.0)
  tx, schedule = optimizer.from_config(opt, 10)
  tokens = jax.random.randint(jax.random.key(0), (8, 33), 0, 512)
  batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}
  state = jax.jit(step_lib.make_init(model, tx, seed=0))()
  full_step = jax.jit(step_lib.make_train_step(model, tx, schedule))  # compiled once, shared
  return model, tx, schedule, batch, state, full_step


def _run(step, state, batch, n=2):
  for _ in range(n):
    state, metrics = step(state, batch)
  return state, metrics


def test_sharded_step_matches_unsharded(setup):
  model, tx, schedule, batch, state, full_step = setup
  want, want_m = _run(full_step, state, batch)
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  shardings = step_lib.state_shardings(model, tx, mesh, RULES)
  bs = mesh_lib.batch_sharding(mesh, RULES)
  step = jax.jit(step_lib.make_train_step(model, tx, schedule, mesh=mesh, rules=RULES),
                 in_shardings=(shardings, {"inputs": bs, "targets": bs}),
                 out_shardings=(shardings, mesh_lib.replicated(mesh)))
  got, got_m = _run(step, jax.jit(step_lib.make_init(model, tx, 0), out_shardings=shardings)(),
                    jax.device_put(batch, bs))
  assert got.params["layer_0"]["mlp"]["gate"].sharding.spec == P("fsdp", "tensor")
  for key in ("loss", "grad_norm", "lr"):
    np.testing.assert_allclose(got_m[key], want_m[key], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fsdp_shards_at_least_98_percent_of_params(setup):
  model, tx, *_ = setup
  mesh = mesh_lib.make_mesh({"data": 1, "fsdp": 8, "tensor": 1})
  shardings = step_lib.state_shardings(model, tx, mesh, RULES)
  frac = mesh_lib.sharded_fraction(shardings.params, model.shapes)
  assert frac >= 0.98, frac
  # Adam moments follow their parameters.
  mu = shardings.opt_state[1][0].mu
  assert mu["embed"].spec == shardings.params["embed"].spec == P("tensor", "fsdp")


def test_gradient_accumulation_matches_full_batch(setup):
  model, tx, schedule, batch, state, full = setup
  accum = jax.jit(step_lib.make_train_step(model, tx, schedule, grad_accum_steps=4))
  (a, am), (b, bm) = _run(full, state, batch, 1), _run(accum, state, batch, 1)
  np.testing.assert_allclose(am["loss"], bm["loss"], rtol=1e-6)
  np.testing.assert_allclose(am["grad_norm"], bm["grad_norm"], rtol=1e-5)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(x, y, atol=1e-5)


def test_each_member_of_a_seed_group_trains_as_its_seed_alone(setup):
  model, tx, schedule, batch, _, full = setup
  seeds = (0, 3, 7)
  group = jax.jit(step_lib.group_step(step_lib.make_train_step(model, tx, schedule)))
  states, metrics = _run(group, jax.jit(step_lib.make_group_init(model, tx, seeds))(), batch, 3)
  assert metrics["loss"].shape == (3,)
  for k, seed in enumerate(seeds):
    alone, alone_m = _run(full, jax.jit(step_lib.make_init(model, tx, seed))(), batch, 3)
    for key in ("loss", "grad_norm", "lr"):
      np.testing.assert_allclose(metrics[key][k], alone_m[key], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(states), jax.tree.leaves(alone)):
      np.testing.assert_allclose(x[k], y, atol=1e-5)
  # The members differ: each has its own seed's weights.
  embed = states.params["embed"]
  assert float(jnp.abs(embed[0] - embed[1]).max()) > 1e-3


def test_model_apply_round_trips_pure_params(setup):
  # The pure-dict params merge back in the module's own leaf order.
  model, _, _, batch, state, _ = setup
  logits = jax.jit(model.apply)(state.params, batch["inputs"])
  loss = step_lib.cross_entropy(logits, batch["targets"])
  assert abs(float(loss) - math.log(512)) < 0.1  # fresh init: near-uniform predictions


# -- configs and validation ------------------------------------------------------------------------
def test_parse_arg_types_values_and_rejects_unknown_keys():
  arg = configlib.parse_arg("preset=tiny,runlocal,params=8e7", preset="s80m", runlocal=False,
                            params=0.0)
  assert (arg.preset, arg.runlocal, arg.params) == ("tiny", True, 8e7)
  with pytest.raises(ValueError, match="unknown config argument 'size'"):
    configlib.parse_arg("size=3", preset="x")


def test_overrides_are_typed_and_checked():
  config = configlib.load(CONFIG, ["--config.train.steps=7", "--config.optimizer.peak_lr=2e-3",
                                   "--config.model.remat=true"])
  assert (config.train.steps, config.optimizer.peak_lr, config.model.remat) == (7, 2e-3, True)
  with pytest.raises(ValueError, match="unknown config key"):
    configlib.load(CONFIG, ["--config.train.stepz=7"])
  with pytest.raises(ValueError, match="expected an integer"):
    configlib.load(CONFIG, ["--config.train.steps=1.5"])


def test_paper_recipe():
  config = configlib.load("configs/train.py:preset=s80m,recipe=paper")
  n = preset("s80m").non_embedding_params
  assert config.train.tokens == round(100 * n) and config.train.seq_len == 2048
  assert PAPER.head_dim(1e9) == 64 and PAPER.head_dim(3e9) == 128
  assert config.optimizer.peak_lr == pytest.approx(3e-3)  # N = 75.5M: below the first anchor
  # Log-linear between anchors: the geometric mean of N gets the geometric mean of the LRs.
  np.testing.assert_allclose(PAPER.peak_lr(math.sqrt(297e6 * 1e9)), math.sqrt(2e-3 * 1e-3))
  built = configlib.load("configs/train.py:params=80e6,layers=12,d_model=768,r=4,gqa=4,"
                         "recipe=paper")
  assert built.model.arch.head_dim == 64 and built.model.arch.n_heads % 4 == 0


@pytest.mark.parametrize("override, match", [
    ("--config.mesh.data=3", "do not divide the 8 devices"),
    ("--config.mesh.fsdp=2", "has 2 devices but 8 are available"),
    ("--config.train.batch_size=12", "not divisible by the 8 batch shards"),
    ("--config.train.seq_len=4096", "exceeds model.max_seq_len"),
    ("--config.data.source=text", "needs data.path"),
])
def test_bad_input_is_refused_before_compiling(override, match):
  config = configlib.load(CONFIG, [override])
  with pytest.raises(ValueError, match=match):
    loop.validate(config, jax.device_count())


def test_missing_data_path_is_refused():
  config = configlib.load(CONFIG, ["--config.data.source=tokens",
                                   "--config.data.path=/nonexistent/tokens"])
  with pytest.raises(ValueError, match="does not exist"):
    loop.validate(config, 8)


def test_synthetic_batches_do_not_depend_on_process_count():
  one = next(loop.SyntheticLoader(100, 4, 8, seed=3))
  halves = [next(loop.SyntheticLoader(100, 4, 8, seed=3, process_index=i, process_count=2))
            for i in range(2)]
  np.testing.assert_array_equal(one["inputs"], np.concatenate([h["inputs"] for h in halves]))
  np.testing.assert_array_equal(one["targets"][:, :-1], one["inputs"][:, 1:])


def test_an_axis_that_cannot_divide_its_dimension_is_replicated_with_a_warning():
  from jax.sharding import Mesh  # pylint: disable=import-outside-toplevel

  from lawsearch.model.partitioning import logical_to_spec  # pylint: disable=C0415

  mesh = Mesh(np.array(jax.devices()[:8]).reshape(1, 8, 1), ("data", "fsdp", "tensor"))
  rules = (("embed", "fsdp"), ("mlp", None))
  assert logical_to_spec(("embed", "mlp"), rules, mesh, (64, 24)) == P("fsdp", None)
  with pytest.warns(UserWarning, match=r"'embed' \(size 36\) is not divisible by mesh axis "
                    r"'fsdp' \(8 ways"):
    assert logical_to_spec(("embed", "mlp"), rules, mesh, (36, 24)) == P(None, None)


def test_a_model_too_large_for_the_device_is_refused_before_anything_compiles():
  config = configlib.load(CONFIG, ["--config.model.arch.n_layers=100000"])
  need = loop.train_memory_bytes(config, 8)
  assert need > 16 * 100000 * 12 * 64 ** 2 / 8  # at least the layers' Adam state, sharded
  with pytest.raises(UserError, match=r"needs at least ~[\d.]+ GiB per device .*model.remat"):
    loop.check_memory(config, 8)
  loop.check_memory(configlib.load(CONFIG), 8)  # the nano model fits
  # remat keeps one layer's activations; more devices divide everything.
  wide = configlib.load(CONFIG, ["--config.train.batch_size=64"])
  assert loop.train_memory_bytes(wide, 8) < loop.train_memory_bytes(wide, 1)
  remat = configlib.load(CONFIG, ["--config.train.batch_size=64", "--config.model.remat=True"])
  assert loop.train_memory_bytes(remat, 8) < loop.train_memory_bytes(wide, 8)
