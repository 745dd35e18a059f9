"""Chat-model backends: OpenAI-compatible servers and local GGUF models through llama.cpp."""
