"""A base for new TTS providers: a pipecat ``TTSService`` whose defaults suit a phone call.

Write the provider the Pipecat way — implement ``run_tts(text, context_id)`` and yield
``TTSAudioRawFrame`` s (with ``context_id``) as the audio arrives — but subclass
:class:`VoiceTTSService` (or put :class:`VoiceTTSMixin` before any pipecat ``TTSService``
subclass) instead of ``TTSService``. The defaults then give what the call's output needs to
know what the caller heard:

- ``TTSStartedFrame`` before a reply's first audio and ``TTSStoppedFrame`` after its last
  (``push_start_frame`` / ``push_stop_frames``): without them the output cannot tell where an
  agent turn ends, so every turn would count as cut off by the caller's next word;
- each chunk's ``TTSTextFrame`` *after* its audio (pipecat's default for services that yield
  their audio from ``run_tts``): the mark after it proves that text was played;
- complete settings (``model``, ``voice``, ``language`` default to None instead of pipecat's
  "not given", which pipecat reports as an error when the service starts).

Frame contract (pipecat's ``TTSService``): consumes ``AggregatedTextFrame`` (voiceagent's
``SentenceAggregator`` chunks, spoken as they are), ``TTSSpeakFrame`` (greetings, re-prompts),
``LLMTextFrame`` s (aggregated into sentences), ``InterruptionFrame``; emits, per reply,
``TTSStartedFrame``, per chunk ``TTSAudioRawFrame`` * then ``TTSTextFrame``, then
``TTSStoppedFrame``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.types import is_given


def complete_settings(settings: TTSSettings | None) -> TTSSettings:
    """``settings`` with every field pipecat left "not given" set to None (no value)."""
    if settings is None:
        return TTSSettings(model=None, voice=None, language=None)
    for f in fields(settings):
        if f.name != "extra" and not is_given(getattr(settings, f.name)):
            setattr(settings, f.name, None)
    return settings


class VoiceTTSMixin:
    """Phone-call defaults for any pipecat ``TTSService``: ``class MyTTS(VoiceTTSMixin, X)``.

    Explicit arguments still win (a service that pushes its own start/stop frames may pass
    ``push_start_frame=False``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs["settings"] = complete_settings(kwargs.get("settings"))
        super().__init__(*args, **kwargs)


class VoiceTTSService(VoiceTTSMixin, TTSService):
    """Base class of a new TTS provider: implement ``run_tts``; see the module docstring."""
