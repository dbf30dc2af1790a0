"""What a search shows a person: a short table, and the files it leaves behind."""

from __future__ import annotations

import json

from lawsearch import export, paths, search
from lawsearch.errors import UserError
from lawsearch.table import format_table


def summary(result, pareto_points: int = 5, accuracy=None) -> str:
  """Baseline, Panda, Surefire and a few Pareto points under the target, with the gain in
  efficiency over the baseline; with `accuracy` (a `laws.accuracy.AccuracyLaw`), each row's
  predicted mean accuracy and its interval from the predicted loss (absolute losses only)."""
  if accuracy is not None:
    require_absolute(result.loss_units)
  rows = [(name, result.locate(spec)) for name, spec in result.picks().items()]
  front = result.pareto[result.pareto["meets_target"]]  # the front under the target
  step = max(1, -(-len(front) // pareto_points))
  rows += [(f"pareto[{i}]", r.to_dict()) for i, (_, r) in enumerate(front.iterrows())
           if i % step == 0 or i == len(front) - 1]
  ref = rows[0][1]["efficiency"] if result.baseline is not None else None
  table = [{"name": name, "d": r["d_model"], "f": r["ffn_dim"], "heads": r["n_heads"],
            "kv": r["n_kv_heads"], "N(M)": r["n_params"] / 1e6, "r": r["mlp_attn_ratio"],
            "d/sqrtN": r["d_over_sqrt_n"], "loss": f"{r['loss']:.5f}",
            "tok/s": r["efficiency"], "gain": (f"{r['efficiency'] / ref - 1:+.1%}" if ref else ""),
            "meets": "yes" if search.meets(r["loss"], result.target) else "no",
            **({"acc": _accuracy(accuracy, r["loss"])} if accuracy is not None else {})}
           for name, r in rows]
  head = (f"target loss {result.target:.5f} ({result.loss_units}); the law's optimum in the "
          f"searched region: d/sqrt(N) = "
          f"{result.optimum[0]:.3f}, r = {result.optimum[1]:.3f}; efficiency: "
          f"{result.measure.label}")
  notes = "".join(f"\nnote: {n}" for n in result.notes)
  return head + "\n" + format_table(table, list(table[0])) + notes


def require_absolute(loss_units: str) -> None:
  """Raises unless a search's losses are absolute (`search.loss_units`), as accuracy needs."""
  if loss_units != "absolute":
    raise UserError("predicted accuracy needs absolute losses: give the search --l-opt (or use "
                    "a law fitted with an absolute L_opt)")


def _accuracy(law, loss: float) -> str:
  """Predicted mean accuracy at `loss` with its bootstrap interval, in percent."""
  text = f"{float(law.predict(loss)):.1%}"
  if law.boot:
    low, high = law.interval(loss)
    text += f" [{float(low):.1%}, {float(high):.1%}]"
  return text


def penalised_summary(picks, result) -> str:
  """The penalised objective's minimiser per lambda (`tradeoff.penalised`), as a table."""
  cost_column = next(c for c in picks.columns if c.startswith("cost ("))
  rows = [{"lambda": r["lambda"], "d": r["d_model"], "f": r["ffn_dim"], "heads": r["n_heads"],
           "kv": r["n_kv_heads"], "r": r["mlp_attn_ratio"], "loss": f"{r['loss']:.5f}",
           "tok/s": r["efficiency"], cost_column: r[cost_column],
           "cost/ref": f"{r['relative_cost']:.3f}", "meets": "yes" if r["meets_target"] else "no"}
          for _, r in picks.iterrows()]
  ref = "the baseline's" if result.baseline is not None else "Panda's"
  return (f"\npenalised objective: loss ({result.loss_units}) + lambda * cost / {ref} cost\n"
          + format_table(rows, list(rows[0])))


def save(result, out_dir: str, named: dict | None = None, penalised=None) -> list[str]:
  """search.json (everything), pareto.png, the train/HF/MaxText files of each pick, and with
  `penalised` (`tradeoff.penalised`) penalised.csv, its picks marked on the plot."""
  from lawsearch.report import pareto  # matplotlib, only when saving

  out = paths.path(out_dir)
  written = [str(out / "search.json"), str(out / "pareto.png")]
  paths.write_text(written[0], json.dumps(result.to_dict(), indent=1))
  pareto.pareto_plot(result, written[1], named, penalised)
  if penalised is not None:
    written.append(str(out / "penalised.csv"))
    paths.write_text(written[-1], penalised.to_csv(index=False))
  for name, spec in result.picks().items():
    if name != "baseline":
      written += export.export(spec, name, out_dir, doc=(
          f"{name} of `lawsearch search` (N = {result.n_params:.3g}, D = {result.tokens:.3g})"
      )).values()
  return written
