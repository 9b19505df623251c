"""Where results go: records, sinks (JSONL, SQLite, CSV), MQTT, the video overlay."""
