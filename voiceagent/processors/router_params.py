"""Tuning of the StabilityCommitRouter: commit rule, speculation and regret tracking."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class RouterParams(BaseModel):
    """Tuning of the commit rule, speculation and regret tracking (seconds unless noted)."""

    stable_partials: int = Field(3, ge=1, description="Hypotheses that must agree.")
    min_stable_s: float = Field(0.25, ge=0.0, description="How long the agreed text must hold.")
    min_silence_s: float = Field(0.25, ge=0.0, description="Least wait after VAD stop.")
    max_silence_s: float = Field(1.0, ge=0.0, description="Cap of the learned-pause wait.")
    hesitation_extra_s: float = Field(0.7, ge=0.0, description="Extra wait for unfinished text.")
    acoustic_extra_s: float = Field(
        0.35, ge=0.0, description="Extra wait when the end-of-turn model hears an unfinished turn."
    )
    max_wait_s: float = Field(2.0, gt=0.0, description="Hard bound after the caller goes silent.")
    max_speaking_stable_s: float = Field(
        5.0, gt=0.0, description="Commit text stable this long even if VAD never stops."
    )
    speculate: bool = True
    max_speculations: int = Field(3, ge=1, description="Speculative starts per utterance.")
    learn_pause: bool = True
    pause_alpha: float = Field(0.3, gt=0.0, le=1.0, description="EMA weight of a new pause.")
    pause_margin_s: float = Field(0.15, ge=0.0, description="Added to the learned pause.")
    regret_window_s: float = Field(1.0, ge=0.0)
    regret_reaction_s: float = Field(
        0.4, ge=0.0, description="Speech this soon after the agent starts is still a regret."
    )

    @model_validator(mode="after")
    def _ordered(self) -> RouterParams:
        if self.max_silence_s < self.min_silence_s:
            raise ValueError("max_silence_s must be >= min_silence_s")
        if self.max_wait_s < self.min_silence_s:
            raise ValueError("max_wait_s must be >= min_silence_s")
        return self
