"""The chat: conversations, streamed replies through the in-process gateway, the free tier."""
