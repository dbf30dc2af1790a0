"""The run directory contract: RunIdentity (canonical, defaults left out, versioned), migrate for
records written before identities, RunDir.locate finding every committed run under its name, and
bind refusing another identity while recording allowed changes."""

import json
from pathlib import Path

import pytest

from lawsearch import configlib, rundir
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir, RunIdentity

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments/results"
NANO = "configs/train.py:preset=nano,data=synthetic"


def test_identity_is_canonical_and_leaves_out_what_may_change_on_resume():
  a = {"model": {"arch": {"d_model": 256, "n_layers": 4}}, "optimizer": {"peak_lr": 3e-4}}
  b = {"optimizer": {"peak_lr": 3e-4}, "model": {"arch": {"n_layers": 4, "d_model": 256}}}
  assert RunIdentity.of(a) == RunIdentity.of(b) and RunIdentity.of(a).hash == RunIdentity.of(b).hash
  assert RunIdentity.of(a).hash != RunIdentity.of({**a, "optimizer": {"peak_lr": 1e-3}}).hash
  logged = {**a, "train": {"log_every": 5}, "mesh": {"fsdp": 8}, "sharding_rules": [["x", None]]}
  assert RunIdentity.of(logged) == RunIdentity.of(a)
  config = configlib.load(NANO)
  assert RunIdentity.of(config) == RunIdentity.of(json.loads(config.to_json()))


def test_a_new_field_at_its_default_renames_no_run(monkeypatch):
  config = json.loads(configlib.load(NANO).to_json())
  before = RunIdentity.of(config).hash
  # ArchSpec's defaulted fields (attention kind, MLA widths) are left out at their defaults ...
  assert "model.arch.attention" not in RunIdentity.of(config).fields
  assert config["model"]["arch"]["attention"] == "gqa"
  # ... and a field added to the config with a declared default is too.
  monkeypatch.setattr(rundir, "EXTRA_DEFAULTS", {**rundir.EXTRA_DEFAULTS, "train.z_loss": 0.0})
  config["train"]["z_loss"] = 0.0
  assert RunIdentity.of(config).hash == before
  config["train"]["z_loss"] = 1e-4
  assert RunIdentity.of(config).hash != before


def test_migrate_reads_identity_files_and_older_configs():
  config = json.loads(configlib.load(NANO).to_json())
  identity = RunIdentity.of(config)
  assert rundir.migrate(identity.to_dict()) == identity  # identity.json
  old = json.loads(json.dumps(config))  # a config.json from before MLA: no MLA fields
  for key in ("attention", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim",
              "qk_rope_head_dim", "v_head_dim"):
    del old["model"]["arch"][key]
  assert rundir.migrate(old) == identity
  with pytest.raises(UserError, match="version 99"):
    rundir.migrate({"version": 99, "fields": {}})
  with pytest.raises(UserError, match="not a list"):
    rundir.migrate([1, 2])


def _committed_runs():
  return sorted(p.parent for p in RESULTS.rglob("config.json")
                if (p.parent / "result.json").exists() and p.parent.name[-13] == "-")


def test_every_committed_run_resolves_to_its_directory():
  committed = _committed_runs()
  assert len(committed) >= 72  # the CPU replication and the MLA sweep
  for run in committed:
    config = json.loads((run / "config.json").read_text())
    assert RunDir.locate(run.parent, run.name[:-13], config).path == run, run


def test_the_cpu_sweep_finds_its_committed_runs():
  from lawsearch.train import sweep  # pylint: disable=import-outside-toplevel

  fit = RESULTS / "cpu_replication/fit"
  config = configlib.load("configs/sweep.py:recipe=cpu")
  planned = {Path(p.workdir) for p in sweep.plan(config, str(fit))}
  assert len(planned) == 34 and all((p / "result.json").exists() for p in planned)


def test_locate_prefers_the_new_name_and_checks_names(tmp_path):
  config = configlib.load(NANO)
  run = RunDir.locate(tmp_path, "nano", config)
  assert run.path == tmp_path / f"nano-{RunIdentity.of(config).hash[:12]}"
  with pytest.raises(UserError, match="run name"):
    RunDir.locate(tmp_path, "a/b", config)
  # A directory of the same name under another hash, holding another run, is not taken.
  other = tmp_path / "nano-0123456789ab"
  other.mkdir()
  (other / "config.json").write_text(json.dumps({"seed": 7}))
  assert RunDir.locate(tmp_path, "nano", config).path == run.path
  (other / "config.json").write_text(config.to_json())
  assert RunDir.locate(tmp_path, "nano", config).path == other  # an older name of this run


def test_bind_records_the_identity_and_refuses_another(tmp_path):
  config = configlib.load(NANO)
  run = RunDir(tmp_path / "run")
  assert run.bind(config) == {}
  assert json.loads(run.identity.read_text()) == RunIdentity.of(config).to_dict()
  logged = configlib.load(NANO, ["--config.train.log_every=3"])
  assert run.bind(logged) == {"train.log_every": (10, 3)}
  with pytest.raises(UserError, match=r"optimizer.peak_lr: 0.003 -> 0.001"):
    run.bind(configlib.load(NANO, ["--config.optimizer.peak_lr=1e-3"]))
  run.config.write_text("[1")
  run.identity.unlink()
  with pytest.raises(UserError, match=r"config.json: damaged run config: not JSON"):
    run.bind(config)
