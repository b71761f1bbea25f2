"""The turn engine: when the caller's turn ends, when the agent speaks, stops and goes on."""
