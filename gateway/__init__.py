"""OpenAI-compatible LLM gateway: keys, quota, channels, relay and usage logs."""
