"""Cloud providers: OpenAI ⇄ provider translation, streaming included, as backends."""
