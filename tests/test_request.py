"""Bad requests fail validation with an error that names the field."""

import pytest
from pydantic import ValidationError

from pipeline.engine import GenerationRequest, SamplingParams

BAD_FIELDS = [
    ({"language": "xx-nowhere"}, "language", "109 espeak-ng codes"),
    ({"text": ""}, "text", "at least 1"),
    ({"text": "   "}, "text", "blank"),
    ({"speaker": [0.0] * 127}, "speaker", "128"),
    ({"emotion": [0.1] * 7}, "emotion", "8"),
    ({"emotion": [-1.0] + [0.5] * 7}, "emotion.0", "greater than or equal to 0"),
    ({"emotion": [0.0] * 8}, "emotion", "positive sum"),
    ({"cfg_scale": 0.5}, "cfg_scale", "greater than or equal to 1"),
    ({"max_new_tokens": 0}, "max_new_tokens", "greater than or equal to 1"),
    ({"fmax": 30000}, "fmax", "less than or equal"),
    ({"pitch_std": -1}, "pitch_std", "greater than or equal"),
    ({"speaking_rate": 41}, "speaking_rate", "less than or equal"),
    ({"audio_prefix_codes": [[1, 2]] * 8}, "audio_prefix_codes", "9 non-empty lists"),
    ({"audio_prefix_codes": [[1, 2]] * 8 + [[1]]}, "audio_prefix_codes", "equal length"),
    ({"audio_prefix_codes": [[1024]] * 9}, "audio_prefix_codes", "0..1023"),
    ({"unconditional_keys": ["espeak"]}, "unconditional_keys", "speaker"),
    ({"unconditional_keys": ["speaker", "speaker"]}, "twice", "twice"),
    ({"seed": -1}, "seed", "greater than or equal"),
    ({"phoneme_ids": [2, 500, 3]}, "phoneme_ids", "0..188"),
    ({"phoneme_ids": [2]}, "phoneme_ids", "BOS and EOS"),
    ({"speaker": [float("nan")] * 128}, "speaker", "finite"),
    ({"volume": 3}, "volume", "Extra inputs"),
    ({"sampling": {"temperature": -0.1}}, "temperature", "greater than or equal"),
    ({"sampling": {"top_p": 1.5}}, "top_p", "less than or equal"),
    ({"sampling": {"top_k": -2}}, "top_k", "greater than or equal"),
    ({"sampling": {"repetition_penalty_window": 0}}, "repetition_penalty_window", "greater than or equal"),
]


@pytest.mark.parametrize(("fields", "named", "reason"), BAD_FIELDS, ids=[b[1] for b in BAD_FIELDS])
def test_invalid_field_is_named(fields, named, reason):
    with pytest.raises(ValidationError) as error:
        GenerationRequest(**({"text": "hello"} | fields))
    message = str(error.value)
    assert named in message and reason in message


def test_valid_request_with_every_control():
    request = GenerationRequest(
        text="Bonjour",
        language="fr-fr",
        speaker=[0.1] * 128,
        emotion=[1, 0, 0, 0, 0, 0, 0, 1],
        unconditional_keys=["emotion"],
        cfg_scale=1.0,
        audio_prefix_codes=[[5, 6, 7]] * 9,
        sampling=SamplingParams(temperature=0.7, top_p=0.9, top_k=40, linear=0.5, conf=0.4),
        seed=2**62,
    )
    assert request.n_prefix_frames == 3 and not request.uses_guidance
