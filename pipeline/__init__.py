"""zonos-serve inference library: text front end, Zonos model, batched engine, vocoder, synthesis.

Pure Python/torch; never imports ray. `pipeline.synthesize(text, voice=...)` is the one-call entry.
"""


def __getattr__(name: str):
    """`pipeline.synthesize` without importing torch and the models for `pipeline.text` users."""
    if name in ("synthesize", "Synthesizer", "SynthesisRequest"):
        from pipeline import synthesis

        return getattr(synthesis, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
