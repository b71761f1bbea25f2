"""Is the caller making a sound right now? Frame-fast, before the VAD can say it is speech.

Silero (through pipecat's VAD) needs ``start_secs`` of confident speech plus its volume ramp:
≈ 300 ms from the caller's first sound to ``VADUserStartedSpeakingFrame``. That is too late
for one decision: an agent reply about to start while a caller resumes after a mid-sentence
pause talks over them. ``CallerSoundDetector`` watches the energy of every 20 ms caller frame
against an adaptive noise floor and pushes ``CallerSoundFrame(sounding=True)`` after
``onset_frames`` loud frames (40 ms), ``sounding=False`` after ``release_frames`` quiet ones.
It only ever delays the start of an agent turn (``FloorHold``); deciding what the sound was
stays with the VAD, the STT and the router.

Per frame: one dot product on a preallocated buffer, no allocation, no logging.
"""

from __future__ import annotations

import math

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pydantic import BaseModel, Field

from voiceagent.frames import CallerSoundFrame


class CallerSoundParams(BaseModel):
    """Tuning of the energy onset detector (PCM16 RMS units)."""

    ratio: float = Field(4.0, gt=1.0, description="Sound is this many times the noise floor.")
    min_rms: float = Field(300.0, ge=0.0, description="Never sound below this RMS.")
    onset_frames: int = Field(2, ge=1, description="Loud frames in a row that start a sound.")
    release_frames: int = Field(5, ge=1, description="Quiet frames in a row that end it.")
    floor_rise: float = Field(0.002, gt=0.0, le=1.0, description="How fast the floor creeps up.")


class CallerSoundDetector(FrameProcessor):
    """Pushes ``CallerSoundFrame`` when the caller's line turns loud or quiet; forwards all."""

    def __init__(self, params: CallerSoundParams | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = params or CallerSoundParams()
        self._buf = np.zeros(0, dtype=np.float32)
        self._floor = self.params.min_rms / self.params.ratio  # until the line is heard
        self._loud = 0
        self._quiet = 0
        self.sounding = False
        self.onsets = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Measure caller audio; announce changes of the line's state."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            change = self.update(frame.audio)
            if change is not None:
                await self.push_frame(CallerSoundFrame(sounding=change))

    def update(self, pcm16: bytes) -> bool | None:
        """Feed one frame; returns the new state when it changed, else None."""
        samples = np.frombuffer(pcm16, dtype="<i2")
        n = samples.size
        if n == 0:
            return None
        if self._buf.size != n:
            self._buf = np.zeros(n, dtype=np.float32)
        buf = self._buf
        np.copyto(buf, samples, casting="unsafe")
        rms = math.sqrt(float(np.dot(buf, buf)) / n)
        p = self.params
        floor = self._floor
        if rms < floor:
            floor = rms  # falls at once, rises slowly: a steady noise stops counting as sound
        else:
            floor += (rms - floor) * p.floor_rise
        self._floor = floor
        loud = rms >= p.min_rms and rms >= floor * p.ratio
        if loud:
            self._loud += 1
            self._quiet = 0
            if not self.sounding and self._loud >= p.onset_frames:
                self.sounding = True
                self.onsets += 1
                return True
        else:
            self._quiet += 1
            self._loud = 0
            if self.sounding and self._quiet >= p.release_frames:
                self.sounding = False
                return False
        return None
