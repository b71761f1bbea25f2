"""The timing core of one live stream: windows, interims, finals, endpointing, UtteranceEnd.

Pure and synchronous. Time is the stream's audio timeline (seconds since the connection's
first audio byte), advanced by the speech detector's frames; no clock is read, so every rule
is tested by feeding made-up frames. The connection runs the decodes it asks for and sends
the messages, and reports back when a decode finished and when its result went out.

Rules (Deepgram's documented live semantics):

- The unfinalized audio is the current *window*, from the end of the last final to now.
- Interim results (``interim_results``): at most every ``interim_interval_s``, when no decode
  of this stream is running or waiting, the window from its start to the current audio
  position is recognized; a tick that finds one running is skipped, never queued. Interims
  start once the window holds ``min_interim_speech_s`` since its first voiced frame and only
  when new voiced audio arrived since the last decode.
- A final closes the window at the current audio position; the next window starts there.
  Endpointing: ``endpointing_s`` of silence after voiced audio → ``speech_final``. Long
  speech is finalized in pieces: past ``window_soft_s`` of speech, where the caller goes on
  after a pause of ``cut_pause_s`` (shorter than endpointing), the window closes at the end
  of the pause; at ``window_max_s`` it closes wherever it is. ``Finalize`` closes the window with
  ``from_finalize`` (an empty final when nothing was voiced). A window of pure silence is
  closed empty every ``silence_window_s``. Finals are decoded in order after the running
  decode; they are never dropped.
- ``UtteranceEnd`` (``utterance_end_ms`` with ``interim_results``): once the audio heard by
  the recognizer runs ``utterance_end_s`` past the last word sent, once per group of words.
  "Heard" is the end of the newest result sent, or the current audio position when nothing
  is pending and no voiced audio came after that result.
- ``SpeechStarted`` (``vad_events``): at ``speech_started_min_s`` of voiced audio after
  ``speech_hangover_s`` of silence, stamped at the start of the voiced run.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import count

_EPS = 1e-6


@dataclass(frozen=True)
class SpeechFrame:
    """One speech-detector frame of the stream (seconds on the audio timeline)."""

    start: float
    end: float
    voiced: bool


@dataclass(frozen=True)
class StreamOptions:
    """What the client asked for (query) and the server's segmentation constants."""

    endpointing_s: float | None = 0.01  # Deepgram's default: 10 ms; None: endpointing=false
    interim_results: bool = False
    utterance_end_s: float | None = None
    vad_events: bool = False
    interim_interval_s: float = 0.1
    min_interim_speech_s: float = 0.25
    window_soft_s: float = 3.0
    window_max_s: float = 6.0
    cut_pause_s: float = 0.09
    silence_window_s: float = 6.0
    speech_started_min_s: float = 0.06
    speech_hangover_s: float = 0.3


_job_ids = count(1)


@dataclass(eq=False)
class Job:
    """One recognition to run: the window ``[start, end]``, interim or final."""

    start: float
    end: float
    final: bool
    reason: str  # interim | endpoint | long | finalize | close | silence
    speech_final: bool = False
    from_finalize: bool = False
    voice_start: float | None = None  # first voiced frame in the window
    id: int = field(default_factory=lambda: next(_job_ids))

    @property
    def needs_decode(self) -> bool:
        """A window without voiced audio is known to be empty: nothing to recognize."""
        return self.voice_start is not None


@dataclass(frozen=True)
class Decode:
    """Run the recognizer over ``job`` now (the stream's only decode in flight)."""

    job: Job


@dataclass(frozen=True)
class SpeechStarted:
    """Send ``SpeechStarted`` stamped ``timestamp``."""

    timestamp: float


@dataclass(frozen=True)
class UtteranceEnd:
    """Send ``UtteranceEnd`` with ``last_word_end``."""

    last_word_end: float


Action = Decode | SpeechStarted | UtteranceEnd


class StreamSegmenter:
    """Decides, frame by frame, what one live stream recognizes and announces."""

    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self.audio_end = 0.0
        self.window_start = 0.0
        self.window_voice: float | None = None
        self.last_voice_end: float | None = None
        self.pending = 0  # jobs created and not yet sent
        self.cover_end = 0.0  # end of the newest window whose result was sent
        self.last_word_end: float | None = None
        self.closed = False
        self._running: Job | None = None
        self._queue: deque[Job] = deque()
        self._decoded_to = 0.0  # audio position of the window's newest decode
        self._last_interim_at = -math.inf
        self._run_start: float | None = None
        self._speaking = False
        self._ue_sent_for = -math.inf
        self.interims_skipped = 0

    @property
    def idle(self) -> bool:
        """No job running, waiting or unsent."""
        return self.pending == 0

    @property
    def keep_from(self) -> float:
        """Earliest audio a job still to decode (or the open window) needs."""
        starts = [self.window_start, *(job.start for job in self._queue)]
        if self._running is not None:
            starts.append(self._running.start)
        return min(starts)

    # -- inputs ---------------------------------------------------------------------------------

    def on_frame(self, frame: SpeechFrame) -> list[Action]:
        """One detector frame: speech state, window closes, interim ticks, UtteranceEnd."""
        if self.closed:
            return []
        actions: list[Action] = []
        if frame.voiced and self._resumes_long_speech(frame):
            actions += self._close_window("long")  # at the end of the pause: frame.start
        self.audio_end = frame.end
        self._follow_speech(frame, actions)
        self._close_if_due(actions)
        self._interim_if_due(actions)
        actions += self._utterance_end()
        return actions

    def finalize(self) -> list[Action]:
        """``Finalize``: close the window now (an empty final if nothing was voiced)."""
        if self.closed:
            return []
        return self._close_window("finalize", from_finalize=True)

    def close(self) -> list[Action]:
        """``CloseStream``: finalize what was voiced; no more frames are taken."""
        if self.closed:
            return []
        actions = self._close_window("close") if self.window_voice is not None else []
        self.closed = True
        return actions

    def decoded(self, job: Job) -> list[Action]:
        """``job``'s decode finished: start the next final waiting, if any."""
        if self._running is job:
            self._running = None
        return self._start_next()

    def emitted(self, job: Job, last_word_end: float | None) -> list[Action]:
        """``job``'s result went out (``last_word_end``: its last word's end, if any)."""
        self.pending -= 1
        self.cover_end = max(self.cover_end, job.end)
        if last_word_end is not None:
            self.last_word_end = max(self.last_word_end or 0.0, last_word_end)
        return self._utterance_end()

    # -- rules ------------------------------------------------------------------------------------

    def _follow_speech(self, frame: SpeechFrame, actions: list[Action]) -> None:
        opts = self.options
        if not frame.voiced:
            self._run_start = None
            if (
                self._speaking
                and frame.end - (self.last_voice_end or 0.0) >= opts.speech_hangover_s
            ):
                self._speaking = False
            return
        if self._run_start is None:
            self._run_start = frame.start
        self.last_voice_end = frame.end
        if self.window_voice is None:
            self.window_voice = frame.start
        if not self._speaking and frame.end - self._run_start >= opts.speech_started_min_s - _EPS:
            self._speaking = True
            if opts.vad_events:
                actions.append(SpeechStarted(self._run_start))

    def _resumes_long_speech(self, frame: SpeechFrame) -> bool:
        opts = self.options
        voice, last = self.window_voice, self.last_voice_end
        if voice is None or last is None:
            return False
        return (
            frame.start - voice >= opts.window_soft_s - _EPS
            and frame.start - last >= opts.cut_pause_s - _EPS
        )

    def _close_if_due(self, actions: list[Action]) -> None:
        opts = self.options
        now = self.audio_end
        if self.window_voice is None:
            if now - self.window_start >= opts.silence_window_s - _EPS:
                actions += self._close_window("silence")
            return
        silence = now - (self.last_voice_end or now)
        speech = now - self.window_voice
        if opts.endpointing_s is not None and silence >= opts.endpointing_s - _EPS:
            actions += self._close_window("endpoint", speech_final=True)
        elif speech >= opts.window_max_s - _EPS:
            actions += self._close_window("long")

    def _interim_if_due(self, actions: list[Action]) -> None:
        opts = self.options
        now = self.audio_end
        if not opts.interim_results or self.window_voice is None:
            return
        if now - self._last_interim_at < opts.interim_interval_s - _EPS:
            return
        if now - self.window_voice < opts.min_interim_speech_s - _EPS:
            return
        if (self.last_voice_end or 0.0) <= self._decoded_to + _EPS:
            return  # nothing voiced since the last decode: nothing new to hear
        if self._running is not None or self._queue:
            self.interims_skipped += 1
            return
        self._last_interim_at = now
        self._decoded_to = now
        job = Job(self.window_start, now, final=False, reason="interim")
        job.voice_start = self.window_voice
        self._running = job
        self.pending += 1
        actions.append(Decode(job))

    def _close_window(
        self, reason: str, *, speech_final: bool = False, from_finalize: bool = False
    ) -> list[Action]:
        job = Job(
            self.window_start,
            self.audio_end,
            final=True,
            reason=reason,
            speech_final=speech_final,
            from_finalize=from_finalize,
            voice_start=self.window_voice,
        )
        self.window_start = self.audio_end
        self.window_voice = None
        self._decoded_to = self.audio_end
        self.pending += 1
        self._queue.append(job)
        return self._start_next()

    def _start_next(self) -> list[Action]:
        if self._running is not None or not self._queue:
            return []
        self._running = self._queue.popleft()
        return [Decode(self._running)]

    def _utterance_end(self) -> list[Action]:
        opts = self.options
        if not (opts.utterance_end_s and opts.interim_results):
            return []
        last = self.last_word_end
        if last is None or last <= self._ue_sent_for + _EPS:
            return []
        heard = self.cover_end
        voice = self.last_voice_end
        if self.pending == 0 and (voice is None or voice <= self.cover_end + _EPS):
            heard = max(heard, self.audio_end)
        if heard - last < opts.utterance_end_s - _EPS:
            return []
        self._ue_sent_for = last
        return [UtteranceEnd(last)]
