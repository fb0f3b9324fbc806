"""Command line: `python -m pipeline synth "text" --out out.wav [--voice clip.wav] [--model SOURCE] [--format mp3]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from pipeline.audio import FORMATS, encode_audio
from pipeline.loading import DTYPES, RANDOM_TINY
from pipeline.synthesis import SynthesisRequest, Synthesizer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="Zonos v0.1 text-to-speech, no Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="speak a text into an audio file")
    synth.add_argument("text", help="the text, or @path to read it from a UTF-8 file")
    synth.add_argument("--out", required=True, type=Path, help="output file")
    synth.add_argument("--format", choices=sorted(FORMATS), help="audio format (default: from --out's suffix)")
    synth.add_argument(
        "--voice",
        type=Path,
        help="a voice clip to clone: 1-60 s in any format FFmpeg decodes (wav, flac, mp3, ogg, webm, m4a, ...)",
    )
    synth.add_argument(
        "--model",
        default="Zyphra/Zonos-v0.1-transformer",
        help="LM: HF repo id, directory, random-tiny or zonos-1.6b-random (random weights: noise)",
    )
    synth.add_argument(
        "--codec", help="codec source (default: descript/dac_44khz; random-tiny with --model random-tiny)"
    )
    synth.add_argument("--speaker-model", help="speaker encoder source (default follows --model likewise)")
    synth.add_argument("--language", default="en-us")
    synth.add_argument("--seed", type=int)
    synth.add_argument("--speaking-rate", type=float, default=15.0)
    synth.add_argument("--cfg-scale", type=float, default=2.0)
    synth.add_argument("--device", default="cpu")
    synth.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="auto: bfloat16 on CUDA")
    return parser


def _format_for(path: Path, explicit: str | None) -> str:
    fmt = explicit or path.suffix.lstrip(".").lower()
    fmt = {"ogg": "opus", "raw": "pcm"}.get(fmt, fmt)
    if fmt not in FORMATS:
        choices = ", ".join(sorted(FORMATS))
        raise ValueError(f"cannot tell the audio format from {path.name!r}: pass --format ({choices})")
    return fmt


def synth(args: argparse.Namespace) -> None:
    text = Path(args.text[1:]).read_text(encoding="utf-8") if args.text.startswith("@") else args.text
    fmt = _format_for(args.out, args.format)
    if args.model == RANDOM_TINY:
        print(
            "random-tiny: randomly initialised models, fully offline; the output is NOISE, not speech.", file=sys.stderr
        )
    synthesizer = Synthesizer.from_pretrained(
        args.model, codec=args.codec, speaker=args.speaker_model, device=args.device, dtype=args.dtype
    )
    speaker = synthesizer.voice_embedding(args.voice) if args.voice else None
    request = SynthesisRequest(
        text=text,
        language=args.language,
        speaker=speaker,
        seed=args.seed,
        speaking_rate=args.speaking_rate,
        cfg_scale=args.cfg_scale,
    )
    with tqdm(desc="segments", unit="seg", disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = synthesizer.synthesize(request, progress=progress)
    args.out.write_bytes(encode_audio(result.audio, result.sample_rate, fmt))
    print(
        f"wrote {args.out} ({fmt}, {result.duration_s:.1f} s of audio, "
        f"{len(result.segments)} segment{'' if len(result.segments) == 1 else 's'}, "
        f"{result.wall_s:.1f} s wall, RTF {result.real_time_factor:.2f})",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        synth(args)
    except (ValueError, ValidationError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
