"""Cloud providers: OpenAI ⇄ provider translation, streaming included, behind the backend
protocol."""
