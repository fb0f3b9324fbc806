"""The whole pipeline without Ray: split -> bucket -> engine -> vocoder -> join, and the CLI."""

import io
import math
from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA
from pipeline.__main__ import main
from pipeline.audio import segment_bounds, segment_layout
from pipeline.codec import HOP_LENGTH, SAMPLE_RATE, Codec
from pipeline.engine import SamplingParams, ZonosEngine
from pipeline.model import FRAME_RATE, MAX_FRAMES
from pipeline.segment import split_text
from pipeline.speaker import SpeakerEncoder
from pipeline.streaming import (
    SynthesisRequest,
    frame_budget,
    segment_request,
    segment_seed,
    speed_controls,
)
from pipeline.synthesis import Synthesizer

SENTENCES = [
    "The harbour was quiet before dawn.",
    "Mr. Adams counted 3.5 crates of apples, then 12 more!",
    "Why would anyone sail at this hour?",
    "Gulls circled the masts; the tide turned slowly, and the ropes creaked.",
    "By noon, the market had filled with voices.",
]


@pytest.fixture(scope="module")
def synthesizer():
    """The fixture LM (it emits EOS, so segments end at realistic lengths) + tiny random codec/speaker."""
    engine = ZonosEngine.from_pretrained(str(DATA), max_rows=32, max_seq_len=1024)
    return Synthesizer(engine, Codec.from_pretrained("random-tiny"), SpeakerEncoder.from_pretrained("random-tiny"))


def _long_text(n_chars: int) -> str:
    words, i = [], 0
    while sum(len(w) + 1 for w in words) < n_chars:
        words.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    return " ".join(words)


def test_frame_budget_scales_with_phonemes_and_rate_and_is_capped():
    assert frame_budget(30, 15.0) < frame_budget(60, 15.0)
    assert frame_budget(60, 10.0) > frame_budget(60, 20.0)
    expected_frames = 60 / 15.0 * 86.13
    assert 2 * expected_frames <= frame_budget(60, 15.0) < 4 * expected_frames
    assert frame_budget(10_000, 15.0) == MAX_FRAMES
    assert frame_budget(30, 0.0) == frame_budget(30, 5.0)  # rate 0 does not divide by zero
    # duration_budget 1: the expected duration (60 phonemes at 15/s = 4 s) plus the 1 s margin
    assert frame_budget(60, 15.0, duration_budget=1.0) == math.ceil(5.0 * FRAME_RATE)


def test_segment_request_takes_its_frame_budget_from_the_request():
    segment = split_text("A short sentence to budget.", "en-us", 300)[0]
    tight = segment_request(SynthesisRequest(text=segment.text, duration_budget=1.0), segment, 3072)
    loose = segment_request(SynthesisRequest(text=segment.text), segment, 3072)
    assert tight.max_new_tokens == frame_budget(segment.n_tokens, 15.0, 1.0) < loose.max_new_tokens


def test_a_texts_first_segment_is_admitted_before_other_texts_later_segments():
    first, second = split_text("The first sentence is here. And then a second one follows.", "en-us", 30)[:2]
    request = SynthesisRequest(text="-")
    assert segment_request(request, first, 3072).priority < segment_request(request, second, 3072).priority


def test_segment_seeds_are_distinct_and_reproducible():
    seeds = [segment_seed(7, i) for i in range(100)]
    assert len(set(seeds)) == 100 and seeds == [segment_seed(7, i) for i in range(100)]
    assert all(0 <= s < 2**63 for s in seeds) and segment_seed(None, 3) is None


def test_long_text_every_segment_present_in_order(synthesizer):
    """~3,000 characters: each segment's audio sits, in text order, where the join puts it."""
    text = _long_text(3000)
    # Fast speech and no guidance keep this CPU test short: frames are budgeted from the rate.
    request = SynthesisRequest(text=text, seed=5, pause_ms=100, speaking_rate=30.0, cfg_scale=1.0)
    result = synthesizer.synthesize(request)
    segments = result.segments
    assert len(segments) >= 10
    assert [s.index for s in segments] == list(range(len(segments)))
    assert "".join(s.text for s in segments).replace(" ", "") == text.replace(" ", "")
    for s in segments:
        assert s.stop_reason in ("eos", "length")
        assert s.codes.shape[1] <= frame_budget(s.n_tokens, 30.0)
    # Each segment's own audio must be found at its offset in the joined audio (no frames: silent).
    alone = [synthesizer.codec.decode([s.codes])[0] if s.n_frames else np.zeros(0, np.float32) for s in segments]
    starts, _ = segment_layout([len(a) for a in alone], SAMPLE_RATE, 100, 0)
    assert len(result.audio) == starts[-1] + len(alone[-1])
    for start, audio in zip(starts, alone, strict=True):
        np.testing.assert_allclose(result.audio[start : start + len(audio)], audio, atol=1e-4)
    # Each timing says where: its own samples, then exactly the 100 ms pause of silence until the next.
    for s, start, audio, following in zip(segments, starts, alone, [*starts[1:], None], strict=True):
        assert (s.start_sample, s.end_sample) == (start, start + len(audio))
        if following is not None:
            assert following - s.end_sample == 4410 and not result.audio[s.end_sample : following].any()
    assert segments[-1].end_sample == len(result.audio)
    assert result.real_time_factor > 0 and 0 < result.time_to_first_audio_s <= result.wall_s
    assert [s.done_s for s in segments] == sorted(s.done_s for s in segments)


def test_segments_get_their_solo_tokens(synthesizer):
    """Batched with the others, each segment's codes equal a run of that segment alone."""
    request = SynthesisRequest(text=" ".join(SENTENCES), seed=11, sampling=SamplingParams(min_p=0.05))
    batched = synthesizer.synthesize(request)
    segments = split_text(request.text, request.language, request.max_tokens_per_segment)
    assert len(segments) == len(batched.segments) > 2
    for segment, result in list(zip(segments, batched.segments, strict=True))[:3]:
        (alone,) = synthesizer.engine.generate(
            [segment_request(request, segment, synthesizer.engine.config.max_seq_len)]
        )
        assert np.array_equal(alone.codes.numpy(), result.codes)


@pytest.mark.parametrize("crossfade_ms", [0.0, 30.0])
def test_stream_joined_equals_synthesize(synthesizer, crossfade_ms):
    request = SynthesisRequest(text=" ".join(SENTENCES), seed=3, crossfade_ms=crossfade_ms, pause_ms=150)
    whole = synthesizer.synthesize(request)
    pieces = list(synthesizer.stream(request))
    order = [p.segment_index for p in pieces]
    assert order == sorted(order) and set(order) == set(range(len(whole.segments)))
    assert [p.timing.index for p in pieces if p.segment_done] == list(range(len(whole.segments)))
    for piece, segment in zip([p for p in pieces if p.segment_done], whole.segments, strict=True):
        assert np.array_equal(piece.timing.codes, segment.codes)
        assert (piece.timing.start_sample, piece.timing.end_sample) == (segment.start_sample, segment.end_sample)
    lengths = [s.n_frames * HOP_LENGTH for s in whole.segments]  # the codec decodes 512 samples a frame
    bounds = segment_bounds(lengths, SAMPLE_RATE, 150, crossfade_ms)
    assert [(s.start_sample, s.end_sample) for s in whole.segments] == bounds
    assert bounds[-1][1] == len(whole.audio)
    streamed = np.concatenate([p.samples for p in pieces])
    assert streamed.shape == whole.audio.shape
    np.testing.assert_allclose(streamed, whole.audio, atol=1e-4)


def test_stream_joined_equals_synthesize_when_stretched(synthesizer):
    """Streamed (16-frame decodes, stretched as they come) or whole: the same stretched audio and
    times (tempo 3: two chained atempo stages of 1.73)."""
    tempo = 3.0
    text = " ".join(SENTENCES[:2])
    request = SynthesisRequest(text=text, seed=3, tempo=tempo, speaking_rate=30.0, cfg_scale=1.0, crossfade_ms=20)
    whole = synthesizer.synthesize(request)
    pieces = list(synthesizer.stream(request))
    streamed = np.concatenate([p.samples for p in pieces])
    assert streamed.shape == whole.audio.shape
    np.testing.assert_allclose(streamed, whole.audio, atol=1e-4)
    times = [(p.timing.start_sample, p.timing.end_sample) for p in pieces if p.segment_done]
    assert times == [(s.start_sample, s.end_sample) for s in whole.segments]
    lengths = [round(s.n_frames * HOP_LENGTH / tempo) for s in whole.segments]
    assert times == segment_bounds(lengths, SAMPLE_RATE, request.pause_ms, 20)


def test_speed_makes_the_audio_strictly_shorter_over_openais_whole_range(synthesizer):
    """OpenAI's speeds through speed_controls on real synthesized audio, with the default duration
    budget: every speed generates the same codes (speed 1's) and stretches them, so each faster
    speed is strictly shorter, exactly round(n / speed) samples (n = 512 per frame)."""
    text = "The harbour was quiet before dawn."
    speeds = (0.25, 0.5, 0.67, 1.0, 1.5, 2.01, 3.0, 4.0)
    runs = {}
    for speed in speeds:
        rate, tempo = speed_controls(speed)
        runs[speed] = synthesizer.synthesize(SynthesisRequest(text=text, seed=6, speaking_rate=rate, tempo=tempo))
    durations = [len(runs[speed].audio) for speed in speeds]
    assert all(a > b for a, b in pairwise(durations)), durations
    normal = runs[1.0]
    for speed, result in runs.items():
        for segment, base in zip(result.segments, normal.segments, strict=True):
            assert np.array_equal(segment.codes, base.codes)  # stretched after generation
            assert segment.end_sample - segment.start_sample == round(segment.n_frames * HOP_LENGTH / speed)


def test_a_resolved_seed_repeats_the_audio(synthesizer):
    """seed None: one request seed is drawn and reported; every segment's seed derives from it, and
    the same text with that seed gives the same audio."""
    text = " ".join(SENTENCES[:2])
    first = synthesizer.synthesize(SynthesisRequest(text=text, speaking_rate=30.0, cfg_scale=1.0))
    assert first.seed is not None and len(first.segments) == 2
    assert [s.seed for s in first.segments] == [segment_seed(first.seed, i) for i in range(2)]
    again = synthesizer.synthesize(SynthesisRequest(text=text, speaking_rate=30.0, cfg_scale=1.0, seed=first.seed))
    assert again.seed == first.seed and np.array_equal(again.audio, first.audio)


def test_stream_first_audio_before_the_last_segment_finishes(synthesizer):
    text = _long_text(600)
    events = []
    engine_step = synthesizer.engine.step

    def recording_step():
        chunks = engine_step()
        events.extend(("finished", c.request_id) for c in chunks if c.finished)
        return chunks

    synthesizer.engine.step = recording_step
    try:
        for piece in synthesizer.stream(SynthesisRequest(text=text, seed=1, max_tokens_per_segment=60, cfg_scale=1.0)):
            if len(piece.samples):
                events.append(("audio", piece.segment_index))
    finally:
        del synthesizer.engine.step
    first_audio = events.index(next(e for e in events if e[0] == "audio"))
    finishes = [i for i, e in enumerate(events) if e[0] == "finished"]
    assert first_audio < finishes[-1]
    assert events[first_audio] == ("audio", 0)


def test_voice_from_a_clip_conditions_generation(synthesizer):
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    speaker = synthesizer.voice_embedding(buffer.getvalue())
    assert len(speaker) == 128 and speaker == synthesizer.voice_embedding((clip, SAMPLE_RATE))
    plain = synthesizer.synthesize(SynthesisRequest(text=SENTENCES[0], seed=2))
    voiced = synthesizer.synthesize(SynthesisRequest(text=SENTENCES[0], seed=2, speaker=speaker))
    assert not np.array_equal(plain.segments[0].codes, voiced.segments[0].codes)


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="text"):
        SynthesisRequest(text="")


def test_cli_random_tiny_writes_the_asked_format(tmp_path, capsys):
    out = tmp_path / "out.flac"
    code = main(["synth", "Hi there. Bye.", "--out", str(out), "--model", "random-tiny", "--seed", "1"])
    assert code == 0
    audio, rate = sf.read(out)
    assert (rate == SAMPLE_RATE and len(audio) > 0 and len(audio) % HOP_LENGTH == 0) or len(audio) > 0
    assert "NOISE" in capsys.readouterr().err


def test_cli_unknown_format_is_an_error(tmp_path, capsys):
    assert main(["synth", "Hello", "--out", str(tmp_path / "x.xyz"), "--model", "random-tiny"]) == 2
    assert "--format" in capsys.readouterr().err


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    code = main(["synth", "Hello", "--out", str(tmp_path / "x.wav"), "--model", "random-tiny", "--language", "xx"])
    assert code == 2
    err = capsys.readouterr().err
    assert "language" in err and "Traceback" not in err


def test_one_call_synthesize_with_clip_or_embedding_or_none():
    import pipeline

    plain = pipeline.synthesize("Hello there.", model="random-tiny", seed=4, speaking_rate=30.0)
    assert plain.sample_rate == SAMPLE_RATE and len(plain.audio) > 0
    clip = (0.1 * np.random.default_rng(1).standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    cloned = pipeline.synthesize("Hello there.", (clip, SAMPLE_RATE), model="random-tiny", seed=4, speaking_rate=30.0)
    embedding = pipeline.synthesize("Hello there.", [0.01] * 128, model="random-tiny", seed=4, speaking_rate=30.0)
    assert not np.array_equal(plain.audio, cloned.audio) and not np.array_equal(plain.audio, embedding.audio)
