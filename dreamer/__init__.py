"""Agent, replay, training loop, logging and tools."""

from omegaconf import OmegaConf

# Config interpolations the presets use (configs/algo/planet.yaml:
# train_ratio: ${mul:250,${env.action_repeat}}). Registered on import of the
# package so that every reader of a config (train.py, the tests, the tools
# that reload a run's saved config) resolves them alike.
if not OmegaConf.has_resolver("mul"):
    OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
