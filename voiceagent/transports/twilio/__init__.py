"""Twilio Media Streams transport: codec, protocol, serializer (in), output (out), ledger."""
