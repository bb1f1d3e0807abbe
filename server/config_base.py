"""The base every configuration section derives from, in a module of its own.

`config.py`, `config_routing.py` and `privacy/config.py` all build on it; none of them
imports another to get it, so it adds no import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A configuration section whose unknown keys are errors: a typo is never ignored."""

    model_config = ConfigDict(extra="forbid")
