"""One call's timeline: recorded by the server, stored with the call, printed and drawn.

``model`` (the events on the stream clock, spans, JSON), ``latency`` (per-turn latency split
by stage), ``observer`` (the server's recording of the events from the call's frames) and
``text`` (the terminal view: ``voiceagent calls show`` and the eval's failed calls). The eval's
HTML report draws the same model (``voiceagent.eval.html``).
"""

from voiceagent.timeline.latency import STAGES, TurnLatency, turn_latencies
from voiceagent.timeline.model import CallTimeline, Span

__all__ = ["STAGES", "CallTimeline", "Span", "TurnLatency", "turn_latencies"]
