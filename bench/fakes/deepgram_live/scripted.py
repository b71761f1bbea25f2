"""``ScriptedRecognizer``: told the script. NOT recognition: for load tests only.

Each connection walks a script of caller lines in order. A line begins at the first voiced
frame (the server's own Silero detector) once the previous line is done; its words are
revealed in proportion to the line's voiced audio heard so far, by character share (a word
is known once the voiced time up to its end has been heard), so they reach the client with
the same window, lag and finals as real recognition — the protocol, segmentation and timing
code is the recognizing server's, and each "decode" takes ``decode_s`` like a Whisper decode
would — but every word is exactly what the script says.

A line is done when all of its voiced time was heard, or at the first unvoiced frame past
``END_TOLERANCE`` of it (its remaining words are revealed there); voice that follows a done
line within ``NEW_LINE_GAP_S`` is still that line's tail, not the next line. A line's
``voiced_s`` is best measured with the same detector (``speech.voiced_seconds``); without
it, it is estimated from the text. A line still unfinished when voice resumes after
``LINE_GAP_S`` of silence is given up: its unrevealed words are dropped (``dropped_words``).

Figures made with it measure a pipeline's load and timing around an STT, never recognition
accuracy or turn-taking on real transcripts: its ``instrument`` says so.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.fakes.deepgram_live.recognizers import Word
from bench.fakes.deepgram_live.segmenter import Job, SpeechFrame

CHARS_PER_VOICED_S = 16.0
END_TOLERANCE = 0.85
LINE_GAP_S = 1.0
NEW_LINE_GAP_S = 0.25
CONFIDENCE = 0.99
DECODE_S = 0.2
_EPS = 1e-6


@dataclass(frozen=True)
class ScriptLine:
    """One caller line: its text and (best measured) voiced seconds."""

    text: str
    voiced_s: float | None = None

    @property
    def expected_voiced_s(self) -> float:
        """``voiced_s``, or an estimate from the text length."""
        if self.voiced_s is not None and self.voiced_s > 0:
            return self.voiced_s
        return max(0.2, len(self.text) / CHARS_PER_VOICED_S)


def load_script(path: str | Path) -> list[ScriptLine]:
    """Read a script file: one caller line per text line, ``#`` comments, blank lines skipped.

    A line may start with its voiced seconds and a tab: ``1.42<TAB>Hi, I'd like to book.``

    Raises:
        ValueError: a line names a malformed duration, or the file holds no line.
        OSError: the file cannot be read.
    """
    lines = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        voiced = None
        if "\t" in raw:
            head, _, rest = raw.partition("\t")
            try:
                voiced = float(head)
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {head!r} is not a duration in seconds") from e
            text = rest.strip()
        lines.append(ScriptLine(text, voiced))
    if not lines:
        raise ValueError(f"{path}: no caller line in the script")
    return lines


@dataclass
class _Line:
    script: ScriptLine
    onset: float
    words: list[str] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # end times of the revealed words
    voiced: float = 0.0
    done: bool = False

    def __post_init__(self) -> None:
        self.words = self.script.text.split()
        total = sum(len(w) for w in self.words) or 1
        spoken = 0
        for word in self.words:
            spoken += len(word)
            self.shares.append(spoken / total)

    @property
    def need_s(self) -> float:
        return self.script.expected_voiced_s


class ScriptedSession:
    """One connection's walk through its script."""

    keeps_audio = False

    def __init__(self, lines: Iterable[ScriptLine], *, decode_s: float = 0.0) -> None:
        self._script: deque[ScriptLine] = deque(lines)
        self._decode_s = decode_s
        self._line: _Line | None = None
        self._words: list[Word] = []  # revealed, in order
        self._last_voice_end: float | None = None
        self.dropped_words = 0
        self.unscripted_s = 0.0
        self.lines_started = 0

    def observe(self, frame: SpeechFrame) -> None:
        """Advance the current line by one frame of voiced (or unvoiced) audio."""
        line = self._line
        if not frame.voiced:
            if line is not None and not line.done and line.voiced >= END_TOLERANCE * line.need_s:
                self._reveal_rest(line, self._last_voice_end or frame.start)
            return
        last = self._last_voice_end
        if (
            line is not None
            and not line.done
            and last is not None
            and frame.start - last >= LINE_GAP_S - _EPS
        ):
            self.dropped_words += len(line.words) - len(line.ends)
            line.done = True
        tail = last is not None and frame.start - last < NEW_LINE_GAP_S - _EPS
        if line is not None and line.done and tail:
            self._last_voice_end = frame.end  # the end of the line just done
            return
        if line is None or line.done:
            line = self._start_line(frame.start)
        self._last_voice_end = frame.end
        if line is None:
            self.unscripted_s += frame.end - frame.start
            return
        before = line.voiced
        line.voiced += frame.end - frame.start
        while len(line.ends) < len(line.words):
            target = line.shares[len(line.ends)] * line.need_s
            if target > line.voiced + _EPS:
                break
            self._reveal(line, frame.start + max(0.0, target - before))
        if len(line.ends) == len(line.words):
            line.done = True

    async def recognize(self, job: Job, pcm16k: bytes) -> list[Word]:
        """The revealed words that end inside the window (jobs come in audio order)."""
        if self._decode_s > 0:
            await asyncio.sleep(self._decode_s)
        self._words = [w for w in self._words if w.end > job.start + _EPS]
        return [w for w in self._words if w.end <= job.end + _EPS]

    def close(self) -> None:
        """Nothing to release."""

    def _start_line(self, onset: float) -> _Line | None:
        if not self._script:
            self._line = None
            return None
        self._line = _Line(self._script.popleft(), onset)
        self.lines_started += 1
        return self._line

    def _reveal(self, line: _Line, end: float) -> None:
        start = line.ends[-1] if line.ends else line.onset
        line.ends.append(end)
        self._words.append(Word(line.words[len(line.ends) - 1], min(start, end), end, CONFIDENCE))

    def _reveal_rest(self, line: _Line, end: float) -> None:
        while len(line.ends) < len(line.words):
            self._reveal(line, end)
        line.done = True


class ScriptedRecognizer:
    """Told each caller line's text; reveals it on the recognizing server's timing."""

    instrument = (
        "SCRIPTED Deepgram-protocol server (told each caller line's text; NOT recognition: "
        "load and timing only, never accuracy or turn-taking on real transcripts)"
    )

    def __init__(self, lines: Iterable[ScriptLine] = (), *, decode_s: float = DECODE_S) -> None:
        """Every connection walks ``lines`` unless ``expect`` queued its own script.

        Args:
            lines: The default script.
            decode_s: How long each recognition takes (a short Whisper decode's time).
        """
        self.default = list(lines)
        self.decode_s = decode_s
        self._next: deque[list[ScriptLine]] = deque()
        self.sessions: deque[ScriptedSession] = deque(maxlen=256)  # the newest, for reports

    def expect(self, lines: Iterable[ScriptLine]) -> None:
        """The next connection walks ``lines`` (queued in connection order)."""
        self._next.append(list(lines))

    async def start(self) -> None:
        """Nothing to load."""

    def open(self, query: Mapping[str, str]) -> ScriptedSession:
        """A session on the next queued script, or on the default one."""
        lines = self._next.popleft() if self._next else self.default
        session = ScriptedSession(lines, decode_s=self.decode_s)
        self.sessions.append(session)
        return session

    async def stop(self) -> None:
        """Nothing to release."""
