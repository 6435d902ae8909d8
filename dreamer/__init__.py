"""Agent, replay, training loop, logging and command-line tools."""
