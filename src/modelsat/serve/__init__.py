"""`modelsat serve`: an OpenAI-compatible routing proxy (config, app, upstream client, auth, metrics)."""
