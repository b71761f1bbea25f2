"""Whisper on the CPU: one loaded faster-whisper model and its short-context decode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceagent.services.local.weights import OFFLINE_EXTRA, WeightsError, resolve_whisper_model
from voiceagent.settings import PIPELINE_SAMPLE_RATE, LocalModelSettings

NO_SPEECH_MAX = 0.6
"""Segments Whisper itself rates likelier silence than speech are dropped (hallucinations)."""
_MIN_DECODE_BYTES = PIPELINE_SAMPLE_RATE * 2 // 10
# faster-whisper's defaults for gluing punctuation tokens to the words around them.
_PREPEND_PUNCTUATION = "\"'“¿([{-"
_APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class TimedWord:
    """One recognized word with its audio span (seconds from the start of the decoded audio)."""

    text: str  # as Whisper wrote it: cased, with attached punctuation ("Tuesday,")
    start: float
    end: float
    probability: float


class WhisperTranscriber:
    """One loaded faster-whisper model (CTranslate2, int8, CPU) shared by any number of calls.

    ``transcribe`` blocks for the decode: call it from a worker thread. CTranslate2 serialises
    concurrent calls internally, so one instance may be used from several threads.

    Short-context decoding (default): Whisper pads every input to 30 s, and its encoder cost
    grows with that window (≈0.2 s of the ≈0.33 s a short decode takes with tiny.en on 2
    cores). For an utterance we encode only its length plus ``pad_s`` of silence (the
    ``audio_ctx`` trick of whisper.cpp), cap the token budget by duration and drop a run-on
    repetition of the whole hypothesis. Measured by ``bench/whisper_context.py`` on 40
    Asterisk phone prompts: WER 4.7 % vs 3.5 % full-window, 0.10 s vs 0.33 s per decode.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        beam_size: int = 1,
        short_context: bool = True,
        pad_s: float = 6.0,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as e:
            raise WeightsError(f"faster-whisper is not installed: {OFFLINE_EXTRA}") from e
        self.model_dir = Path(model_dir)
        self.beam_size = beam_size
        self.short_context = short_context
        self._pad_frames = int(pad_s * 100)
        self._model = WhisperModel(
            str(self.model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            local_files_only=True,
        )
        multilingual = self._model.model.is_multilingual
        tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language="en" if multilingual else None,
        )
        self._prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._tokenizer = tokenizer

    def transcribe(self, pcm16_16k: bytes) -> str:
        """Return the English words in 16 kHz PCM16 mono audio ("" for silence or noise)."""
        usable = len(pcm16_16k) // 2 * 2
        if usable < _MIN_DECODE_BYTES:
            return ""
        audio = np.frombuffer(pcm16_16k, dtype=np.int16, count=usable // 2)
        samples = audio.astype(np.float32) * (1.0 / 32768.0)
        if self.short_context and len(samples) < 24 * PIPELINE_SAMPLE_RATE:
            return self._transcribe_short(samples)
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=self.beam_size,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        texts = [s.text.strip() for s in segments if s.no_speech_prob <= NO_SPEECH_MAX]
        return " ".join(t for t in texts if t)

    def transcribe_words(self, pcm16_16k: bytes) -> list[TimedWord]:
        """Like ``transcribe``, word by word with each word's audio span (cross-attention DTW).

        The span comes from faster-whisper's own alignment (``find_alignment``) over the same
        encoder output the words were decoded from; a first word stretched over the silence
        before it is cut to twice the median word length, as faster-whisper does.
        """
        usable = len(pcm16_16k) // 2 * 2
        if usable < _MIN_DECODE_BYTES:
            return []
        audio = np.frombuffer(pcm16_16k, dtype=np.int16, count=usable // 2)
        samples = audio.astype(np.float32) * (1.0 / 32768.0)
        if self.short_context and len(samples) < 24 * PIPELINE_SAMPLE_RATE:
            decoded = self._decode_short(samples)
            if decoded is None:
                return []
            tokens, encoded, frames = decoded
            return self._align(tokens, encoded, frames)
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=self.beam_size,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            word_timestamps=True,
        )
        return [
            TimedWord(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for s in segments
            if s.no_speech_prob <= NO_SPEECH_MAX
            for w in s.words or []
            if w.word.strip()
        ]

    def _transcribe_short(self, samples: np.ndarray) -> str:
        decoded = self._decode_short(samples)
        if decoded is None:
            return ""
        return drop_run_on_repeat(self._tokenizer.decode(decoded[0]).strip())

    def _decode_short(self, samples: np.ndarray) -> tuple[list[int], object, int] | None:
        """Greedy decode over a window of the audio's length plus ``pad_s``.

        Returns the text tokens, the encoder output and the audio's feature frames, or None
        when Whisper rates the audio likelier silence than speech.
        """
        import ctranslate2

        features = self._model.feature_extractor(samples)
        frames = features.shape[-1]
        window = min(3000, -(-(frames + self._pad_frames) // 100) * 100)
        padded = np.zeros((features.shape[0], window), dtype=np.float32)
        padded[:, : min(frames, window)] = features[:, :window]
        model = self._model.model
        encoded = model.encode(ctranslate2.StorageView.from_array(padded[None]), to_cpu=False)
        result = model.generate(
            encoded,
            [self._prompt],
            beam_size=self.beam_size,
            max_length=min(448, len(self._prompt) + 8 + 6 * frames // 100),
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        if result.no_speech_prob > NO_SPEECH_MAX:
            return None
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        return tokens, encoded, frames

    def _align(self, tokens: list[int], encoded: object, frames: int) -> list[TimedWord]:
        from faster_whisper.transcribe import merge_punctuations

        kept = drop_run_on_repeat(self._tokenizer.decode(tokens).strip()).split()
        if not kept:
            return []
        alignment = self._model.find_alignment(self._tokenizer, [tokens], encoded, frames)[0]
        merge_punctuations(alignment, _PREPEND_PUNCTUATION, _APPEND_PUNCTUATION)
        words = [
            TimedWord(
                a["word"].strip(), float(a["start"]), float(a["end"]), float(a["probability"])
            )
            for a in alignment
            if a["word"].strip()
        ][: len(kept)]
        lengths = [w.end - w.start for w in words if w.end > w.start]
        if words and lengths:
            longest = 2 * min(0.7, float(np.median(lengths)))
            first = words[0]
            if first.end - first.start > longest:
                words[0] = TimedWord(first.text, first.end - longest, first.end, first.probability)
        return words


def drop_run_on_repeat(text: str) -> str:
    """Cut a hypothesis that restarts itself ("Press 5 to leave a message. Press 5 to")."""
    words = text.split()
    keys = ["".join(c for c in w.lower() if c.isalnum() or c == "'") for w in words]
    n = len(keys)
    for period in range(3, n - 1):
        if all(keys[i] == keys[i - period] for i in range(period, n)):
            return " ".join(words[:period])
    return text


def load_transcriber(settings: LocalModelSettings) -> WhisperTranscriber:
    """Resolve the configured Whisper weights and load them (blocking: run in a thread)."""
    model_dir = resolve_whisper_model(settings)
    return WhisperTranscriber(
        model_dir,
        threads=settings.whisper_threads,
        beam_size=settings.whisper_beam_size,
        short_context=settings.whisper_short_context,
    )
