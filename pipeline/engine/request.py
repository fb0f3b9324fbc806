"""What goes into and comes out of the engine. Defaults are the reference implementation's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from pipeline.model import CODEBOOK_SIZE, MAX_FRAMES, N_CODEBOOKS
from pipeline.text import LANGUAGE_DESCRIPTION, PHONEME_VOCAB_SIZE, LanguageCode

SPEAKER_DIM = 128
# The 8 weights of `emotion`, in order (docs/zonos-v0.1.md, section 3)
EMOTION_NAMES = ("happiness", "sadness", "disgust", "fear", "surprise", "anger", "other", "neutral")
DEFAULT_EMOTION = (0.3077, 0.0256, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077)
ConditionerKey = Literal["speaker", "emotion", "fmax", "pitch_std", "speaking_rate", "language_id"]


class SamplingParams(BaseModel):
    """Per-request sampling settings (spec section 5); temperature 0 is greedy."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float = Field(1.0, ge=0.0, le=10.0)
    top_p: float = Field(0.0, ge=0.0, le=1.0)
    top_k: int = Field(0, ge=0, le=CODEBOOK_SIZE)
    min_p: float = Field(0.1, ge=0.0, le=1.0)
    linear: float = Field(0.0, ge=0.0, le=10.0)
    conf: float = Field(0.0, ge=-10.0, le=10.0)
    quad: float = Field(0.0, ge=0.0, le=10.0)
    repetition_penalty: float = Field(3.0, ge=1.0, le=10.0)
    repetition_penalty_window: int = Field(2, ge=1, le=64)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is blank: there is nothing to speak")
    return text


SpeechText = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]
"""Text to speak, as every request model takes it: not empty, not whitespace only (what cleaning
leaves of it is pipeline.segment.split_text's to judge: NothingToSpeakError)."""


# The bounds of the controls, one definition each: Controls uses them, and so do the API models that
# take the same fields (deployments.api.openai.SpeechRequest's extensions), so that every JSON schema
# states the bounds the server enforces (lengths as minItems/maxItems).
SpeakerEmbedding = Annotated[list[float], Field(min_length=SPEAKER_DIM, max_length=SPEAKER_DIM)]
EmotionWeights = Annotated[
    list[Annotated[float, Field(ge=0.0)]], Field(min_length=len(EMOTION_NAMES), max_length=len(EMOTION_NAMES))
]
"""The 8 emotion weights (EMOTION_NAMES' order), each >= 0; their sum must be positive (Controls checks it)."""
PitchStd = Annotated[float, Field(ge=0.0, le=400.0)]
SpeakingRate = Annotated[float, Field(ge=0.0, le=40.0)]  # phonemes per second
CfgScale = Annotated[float, Field(ge=1.0, le=20.0)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class Controls(BaseModel):
    """What every Zonos request takes: the text, its language, the voice and the conditioning."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    text: SpeechText
    language: LanguageCode = Field("en-us", description=LANGUAGE_DESCRIPTION)
    speaker: SpeakerEmbedding | None = Field(None, description="128-float speaker embedding; None = unconditional.")
    emotion: EmotionWeights | None = Field(
        None, description="8 non-negative weights with a positive sum; None = the reference default."
    )
    fmax: float = Field(22050.0, ge=0.0, le=24000.0)
    pitch_std: PitchStd = 20.0
    speaking_rate: SpeakingRate = Field(15.0, description="Phonemes per second.")
    unconditional_keys: list[ConditionerKey] = Field(default_factory=list)
    cfg_scale: CfgScale = 2.0
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    seed: Seed | None = None

    @field_validator("emotion")
    @classmethod
    def _emotion_weights(cls, emotion: list[float] | None) -> list[float] | None:
        """8 weights, each >= 0, are EmotionWeights' (checked before this); a zero sum is not a mix."""
        if emotion is not None and sum(emotion) <= 0:
            raise ValueError("emotion weights must be non-negative with a positive sum")
        return emotion

    @field_validator("unconditional_keys")
    @classmethod
    def _unique_unconditional_keys(cls, keys: list[str]) -> list[str]:
        if len(set(keys)) != len(keys):
            raise ValueError("unconditional_keys lists a key twice")
        return keys

    @property
    def uses_guidance(self) -> bool:
        """cfg_scale 1 needs no unconditional branch: half the rows."""
        return self.cfg_scale != 1.0


class GenerationRequest(Controls):
    """One utterance for the engine: the controls plus phonemes, length limit and audio prefix."""

    phoneme_ids: list[int] | None = Field(
        None, description="Already tokenised phonemes (BOS ... EOS); when given, `text` is not phonemised again."
    )
    max_new_tokens: int = Field(MAX_FRAMES, ge=1)
    priority: int = Field(
        0, ge=0, description="Admission order among waiting requests: lower first, equal ones first come first served."
    )
    audio_prefix_codes: list[list[int]] | None = Field(
        None, description="Codes of audio to continue from: 9 lists of P codes in 0..1023."
    )

    @field_validator("phoneme_ids")
    @classmethod
    def _phoneme_ids_in_vocab(cls, ids: list[int] | None) -> list[int] | None:
        if ids is not None and (len(ids) < 2 or not all(0 <= i < PHONEME_VOCAB_SIZE for i in ids)):
            raise ValueError(f"phoneme_ids must hold at least BOS and EOS, each id in 0..{PHONEME_VOCAB_SIZE - 1}")
        return ids

    @field_validator("audio_prefix_codes")
    @classmethod
    def _prefix_codes(cls, codes: list[list[int]] | None) -> list[list[int]] | None:
        if codes is None:
            return None
        if len(codes) != N_CODEBOOKS or len({len(row) for row in codes}) != 1 or not codes[0]:
            raise ValueError(f"audio_prefix_codes must be {N_CODEBOOKS} non-empty lists of equal length")
        if not all(0 <= code < CODEBOOK_SIZE for row in codes for code in row):
            raise ValueError(f"audio_prefix_codes must be codec codes in 0..{CODEBOOK_SIZE - 1}")
        return codes

    @property
    def n_prefix_frames(self) -> int:
        return len(self.audio_prefix_codes[0]) if self.audio_prefix_codes else 0


StopReason = Literal["eos", "length"]


@dataclass
class GenerationResult:
    """New frames of one request (audio-prefix frames excluded), codes in 0..1023."""

    request_id: str
    codes: torch.Tensor  # LongTensor [9, T]
    stop_reason: StopReason


@dataclass
class FrameChunk:
    """Frames of one request that became complete in one engine step (the delay pattern resolved)."""

    request_id: str
    frames: torch.Tensor  # LongTensor [9, n], n may be 0 on the final chunk
    finished: bool
    stop_reason: StopReason | None
