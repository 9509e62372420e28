"""Request formats other than Chat Completions, translated to the relay's one call: Claude's Messages API."""
