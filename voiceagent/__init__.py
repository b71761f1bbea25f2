"""voiceagent: real-time phone voice agents on Twilio Media Streams, built on pipecat-ai."""

__version__ = "0.1.0"
