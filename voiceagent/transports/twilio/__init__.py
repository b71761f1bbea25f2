"""Twilio Media Streams transport: codec, wire protocol, serializer (in), output (out), playback ledger."""
