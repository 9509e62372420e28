"""Request formats other than Chat Completions, through the relay's one lifecycle: Claude's Messages API, Gemini's own."""
