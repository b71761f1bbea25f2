"""``TurnTaking``: every turn-taking knob in one typed, validated options model.

One model per concern, each field with its default and what it does (like LiveKit's
``TurnHandlingOptions``). Unknown fields and out-of-range values are rejected when the model is
built, so a typo in ``VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S`` stops the server at startup
instead of being ignored. Times are seconds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VoiceActivity(_Options):
    """How the caller's audio becomes speech start/stop and sound onset events.

    Silero (pipecat's VAD) confirms speech; a frame-fast energy detector marks the first sound
    a few hundred ms earlier, which times barge-ins and holds a reply that would start over a
    caller who resumes.
    """

    confidence: float = Field(0.7, gt=0.0, lt=1.0, description="Silero speech confidence.")
    start_s: float = Field(0.15, ge=0.0, le=1.0, description="Speech needed to report a start.")
    stop_s: float = Field(0.2, ge=0.05, le=2.0, description="Silence needed to report a stop.")
    min_volume: float = Field(0.6, ge=0.0, le=1.0, description="Silero's volume gate.")
    onset_ratio: float = Field(4.0, gt=1.0, description="Sound is this many times the floor.")
    onset_min_rms: float = Field(300.0, ge=0.0, description="Never sound below this PCM16 RMS.")
    onset_frames: int = Field(2, ge=1, le=50, description="Loud 20 ms blocks that start a sound.")
    release_frames: int = Field(5, ge=1, le=100, description="Quiet 20 ms blocks that end a sound.")
    floor_rise: float = Field(0.002, gt=0.0, le=1.0, description="How fast the floor creeps up.")
    echo_suppression: bool = Field(
        True,
        description="Mute caller audio that carries only the agent's own echo (a speakerphone) "
        "before the VAD and the STT hear it (voiceagent.transports.twilio.echo).",
    )


class Endpointing(_Options):
    """When the caller's utterance is over (the commit)."""

    min_silence_s: float = Field(
        0.5,
        ge=0.0,
        le=5.0,
        description="Least wait after speech (LiveKit's min_endpointing_delay is 0.5 too).",
    )
    max_silence_s: float = Field(1.0, ge=0.0, le=5.0, description="Cap of the learned wait.")
    hesitation_extra_s: float = Field(
        0.7, ge=0.0, le=5.0, description="Extra wait when the words sound unfinished."
    )
    acoustic_extra_s: float = Field(
        0.35, ge=0.0, le=5.0, description="Extra wait when the end-of-turn model hears more."
    )
    max_wait_s: float = Field(
        2.0, gt=0.0, le=10.0, description="Commit whatever there is after this much silence."
    )
    learn_pause: bool = Field(True, description="Learn the caller's mid-utterance pause (EMA).")
    pause_alpha: float = Field(0.3, gt=0.0, le=1.0, description="EMA weight of a new pause.")
    pause_margin_s: float = Field(0.15, ge=0.0, le=2.0, description="Added to the learned pause.")
    coverage_tolerance_s: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="A transcript covers the speech when its audio reaches this close to the "
        "end of the caller's voice; until then the STT is behind and the commit waits.",
    )
    max_stt_wait_s: float = Field(
        1.5,
        ge=0.0,
        le=10.0,
        description="The longest wait after the voice ended for a covering transcript.",
    )
    stable_partials: int = Field(
        2, ge=1, le=20, description="Agreeing partials that settle text without a final."
    )
    max_speaking_stable_s: float = Field(
        5.0, gt=0.0, description="Commit text stable this long even if the VAD never stops."
    )
    regret_window_s: float = Field(
        1.0, ge=0.0, le=5.0, description="Caller speech this soon after a commit continues it."
    )
    regret_reaction_s: float = Field(
        0.4,
        ge=0.0,
        le=2.0,
        description="Speech this soon after the agent became audible still continues the turn.",
    )
    revision_tolerance_s: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Words starting this close after the caller resumed still revise the "
        "committed utterance (word timestamps are approximate).",
    )
    end_of_turn_model: bool = Field(
        False,
        description="Ask pipecat's Smart Turn model at each speech stop whether the caller "
        "sounds done (adds acoustic_extra_s when not). Off: the bundled STTs punctuate and "
        "the text cues read that.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Endpointing:
        if self.max_silence_s < self.min_silence_s:
            raise ValueError("max_silence_s must be >= min_silence_s")
        if self.max_wait_s < self.min_silence_s:
            raise ValueError("max_wait_s must be >= min_silence_s")
        return self


class Speculation(_Options):
    """Starting the LLM before the commit (its reply is held until the commit confirms it)."""

    enabled: bool = True
    while_speaking: bool = Field(
        False,
        description="Also speculate on stable, complete-sounding text mid-utterance (off: on "
        "both turn benches it added 15-35 % LLM requests, most abandoned, for no latency).",
    )
    max_per_utterance: int = Field(
        3, ge=1, le=20, description="Speculative starts while the caller is still speaking."
    )


class Interruption(_Options):
    """When caller speech over the agent takes the floor (barge-in), and what it keeps."""

    enabled: bool = True
    min_duration_s: float = Field(
        0.5,
        ge=0.0,
        le=5.0,
        description="Speech over the agent this long interrupts even before any word arrives.",
    )
    min_words: int = Field(
        2, ge=1, le=20, description="Content words that interrupt (one clear word does too)."
    )
    max_backchannel_s: float = Field(
        1.5,
        ge=0.0,
        le=10.0,
        description="Speech recognised only as backchannel still interrupts past this length.",
    )
    echo_guard_s: float = Field(
        0.3, ge=0.0, le=3.0, description="Ignore sound starting this soon after the agent does."
    )
    pause_on_speech: bool = Field(
        True,
        description="Stop sending agent audio at the caller's first sound over it; resume if it "
        "was a backchannel or a noise.",
    )
    join_gap_s: float = Field(
        0.6,
        ge=0.0,
        le=3.0,
        description="Quiet shorter than this inside the caller's speech (a comma: \"Wait, | what "
        "is...\") keeps one run of speech; after it a paused agent goes on. LiveKit's VAD holds "
        "speech across 0.55 s; at 0.5 a caller going on after a 0.5 s comma met the agent "
        "resuming.",
    )
    late_words_s: float = Field(
        1.5, ge=0.0, le=5.0, description="Words this late after the speech can still interrupt."
    )
    end_overlap_s: float = Field(
        0.5,
        ge=0.0,
        le=3.0,
        description="Speech ending this close to the agent's last word is an answer, not noise.",
    )
    resume_false_interruption: bool = True
    false_interruption_timeout_s: float = Field(
        1.5, gt=0.0, le=10.0, description="No words this long after a barge-in: resume the agent."
    )
    floor_hold_max_s: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        description="Hold the start of a reply at most this long while the caller's line is "
        "loud (0: never hold).",
    )


class Dtmf(_Options):
    """Keypad digits are caller input."""

    enabled: bool = True
    terminator: str = Field("#", pattern=r"^[0-9*#]?$", description="Ends an entry at once.")
    inter_digit_timeout_s: float = Field(
        2.0, gt=0.0, le=30.0, description="Quiet keypad this long ends an entry."
    )
    max_digits: int = Field(32, ge=1, le=256, description="An entry this long ends at once.")
    template: str = Field(
        "The caller pressed {digits} on the keypad.",
        description="How an entry reaches the LLM ({digits} is spaced: '4 2').",
    )

    @model_validator(mode="after")
    def _template(self) -> Dtmf:
        if "{digits}" not in self.template:
            raise ValueError("template must contain {digits}")
        return self


class Watchdog(_Options):
    """Never leave the call silent."""

    reply_timeout_s: float = Field(
        6.0, gt=0.0, le=60.0, description="No agent audio this long after a commit: re-run."
    )
    error_grace_s: float = Field(
        0.5, ge=0.0, le=10.0, description="After a provider error, act this soon instead."
    )
    rerun_llm: bool = True
    fallback_text: str = "Sorry, I didn't catch that\u2014could you say it again?"
    idle_timeout_s: float = Field(
        10.0, gt=0.0, le=300.0, description="Silence after the agent spoke before a re-prompt."
    )
    max_reprompts: int = Field(2, ge=0, le=10, description="Re-prompts in a row.")
    reprompt_text: str = "Are you still there?"


class TurnTaking(_Options):
    """Turn-taking of a call: endpointing, speculation, interruption, DTMF, watchdog."""

    voice: VoiceActivity = Field(default_factory=VoiceActivity)
    endpointing: Endpointing = Field(default_factory=Endpointing)
    speculation: Speculation = Field(default_factory=Speculation)
    interruption: Interruption = Field(default_factory=Interruption)
    dtmf: Dtmf = Field(default_factory=Dtmf)
    watchdog: Watchdog = Field(default_factory=Watchdog)
    first_chunk_min_words: int = Field(
        1,
        ge=1,
        le=20,
        description="Words the agent's first spoken chunk needs at a clause boundary (1: speak "
        "at the first comma).",
    )
