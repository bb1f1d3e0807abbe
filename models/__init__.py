"""Local engines: vLLM children that Spillgate supervises, or engines it attaches to by URL."""
