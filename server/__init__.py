"""The HTTP front, the decision step and the executor: composes `models` and `fallback`."""
