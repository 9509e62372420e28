"""The Telegram bot: a door to Arweave uploads for people who bind their API key in a chat."""
