"""Chat-platform channels: Telegram, MQTT and signed webhooks behind one adapter model
(docs/channels.md)."""
