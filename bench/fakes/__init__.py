"""Deterministic cloud-shaped providers for benchmarks (never imported by voiceagent)."""
