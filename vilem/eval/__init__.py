"""Evaluation: the one encode engine (cache, shards; training validation uses it too), the task
registry, fine-grained probes and proofreading."""
