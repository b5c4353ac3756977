"""A reward plugin module for the tests (loaded with workers.engine.rewards.load_plugins): one good component, one
that raises, one that hangs."""
import time

from workers.engine.rewards import Component, register


def mentions_please(completion: str, task: dict):
    return (1.0, "polite") if "please" in completion.lower() else (0.0, "not polite")


def always_raises(completion: str, task: dict):
    raise ValueError("plugin exploded")


def hangs(completion: str, task: dict):
    while True:          # burns CPU forever: only killing its process stops it
        time.sleep(0)


register(mentions_please, name="polite", label="Polite", category="custom")
REWARDS = [
    Component("raises", "Raises", "always raises", "custom", always_raises, timeout_s=2.0),
    Component("hangs", "Hangs", "never returns", "custom", hangs, timeout_s=0.5),
]
