"""Sharded training: mesh and sharding rules, optimizer, train state and step, checkpoints,
metrics, the train loop and ahead-of-time TPU compiles. Import submodules directly."""
