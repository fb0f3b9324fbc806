"""The application's configuration: one pydantic model, filled from `args` in a Serve config.

It holds the Serve options of every deployment too (`DeploymentOptions`), with their defaults
here and nowhere else: `deployments.app:build_app` applies them with `.options()`, and the
deployment classes carry none. No ray import: the HTTP layer reads this module as well.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from pipeline.engine import EngineConfig
from pipeline.voices import check_voice_binding


class ModelSources(BaseModel):
    """Where each model comes from; `fallback` is used (loudly) when a source cannot be loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "Zyphra/Zonos-v0.1-transformer"
    codec: str = "descript/dac_44khz"
    speaker: str = "Zyphra/Zonos-v0.1-speaker-embedding"
    fallback: Literal["random-tiny"] | None = Field(
        None, description="Load random-tiny models when the real ones cannot be had (the output is NOT speech)."
    )
    offline: bool = Field(
        False,
        description="Never contact the Hugging Face Hub: repo ids load from the local cache (HF_HOME) only "
        "(HF_HUB_OFFLINE=1 in the model-loading replicas). Without it an unreachable hub is found out by one "
        "short probe per replica process (pipeline.hub) and treated the same way.",
    )
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The LM's dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    codec_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The vocoder's dtype; auto = float16 on CUDA, float32 on CPU."
    )


class BatchSettings(BaseModel):
    """@serve.batch knobs: `build_app` hands them to the deployment as its `user_config`, and the
    deployment's `reconfigure` applies them (Serve calls it before the replica serves, and again,
    without a restart, when a `user_config` changes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0, le=5.0)


class DeploymentOptions(BaseModel):
    """Ray Serve's options for one deployment: keywords of `Deployment.options()`, which checks
    their values when `build_app` applies them. A field left out keeps Serve's own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_replicas: int | None = Field(None, ge=1, description="A fixed number of replicas (or autoscaling_config).")
    autoscaling_config: dict[str, Any] | None = Field(
        None, description="Serve's AutoscalingConfig: min_replicas, max_replicas, target_ongoing_requests, ..."
    )
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="Requests one replica runs at once (a @serve.batch never exceeds it)."
    )
    max_queued_requests: int | None = Field(
        None, ge=-1, description="Requests queued per caller before 503 / BackPressureError; -1: no limit."
    )
    ray_actor_options: dict[str, Any] | None = Field(
        None, description="Per replica: num_cpus, num_gpus, memory, resources (custom, for placement), ..."
    )
    max_surge_percent: int | None = Field(None, ge=0, description="Extra replicas started during a rolling update.")
    graceful_shutdown_wait_loop_s: float | None = Field(None, ge=0)
    graceful_shutdown_timeout_s: float | None = Field(None, ge=0)
    health_check_period_s: float | None = Field(None, gt=0)
    health_check_timeout_s: float | None = Field(None, gt=0)

    def serve_options(self) -> dict[str, Any]:
        """The keywords for `Deployment.options()`: the fields that were given."""
        return self.model_dump(exclude_unset=True)


DATA_DIR_ENV = "ZONOS_DATA_DIR"
API_KEYS_FILE_ENV = "ZONOS_API_KEYS_FILE"  # a file of API keys, read on the Ingress (deployments/api/auth.py)
# An origin as a browser sends it in its Origin header: scheme://host[:port], lower case, no path
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[a-z0-9.\-\[\]:]+")
DEFAULT_DATA_DIR = "~/.local/share/zonos-serve"


def data_path(path: str) -> str:
    """`path` (AppConfig.voices_db, or a backup's path) as the absolute path to open.

    ":memory:" and absolute paths stay as they are (a leading ~ is expanded); a relative path is
    resolved against $ZONOS_DATA_DIR when set, else ~/.local/share/zonos-serve (XDG's default place
    for a user's application data; the store creates missing directories). Never against the working
    directory: a Serve replica's is wherever Ray started it (a runtime_env's temporary copy of the
    code, the node's session directory), which a redeploy or restart replaces, so a library there
    would seem to vanish. Evaluated where the file is opened (the Voices replica), whose node's
    environment and home directory count; ZONOS_DATA_DIR must itself be absolute (ValueError).
    """
    if path == ":memory:":
        return path
    given = Path(path).expanduser()
    if given.is_absolute():
        return str(given)
    base = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    base_dir = Path(base).expanduser()
    if not base_dir.is_absolute():
        raise ValueError(f"{DATA_DIR_ENV} must be an absolute directory, got {base!r}")
    return str(base_dir / given)


# An API key's SHA-256 digest as AppConfig.api_keys holds it (deployments/api/auth.py compares digests)
KEY_DIGEST_PREFIX = "sha256:"
_KEY_DIGEST = re.compile(r"sha256:[0-9a-fA-F]{64}")
KEY_DIGEST_COMMAND = (
    "python3 -c 'import hashlib,sys;print(\"sha256:\"+hashlib.sha256(sys.argv[1].encode()).hexdigest())' KEY"
)


def _key_digest(entry: SecretStr) -> SecretStr:
    """An entry of AppConfig.api_keys: 'sha256:' and 64 hex digits (surrounding whitespace dropped), else
    ValueError. The message never quotes the entry: it is most likely a key given by mistake."""
    text = entry.get_secret_value().strip()
    if not _KEY_DIGEST.fullmatch(text):
        raise ValueError(
            "an entry of api_keys must be a key's SHA-256 digest, 'sha256:' and 64 hex digits, not a key: Ray "
            "Serve logs an app's args in plain text (the value given is not shown). Put the keys themselves in "
            f"api_keys_file or in the file ${API_KEYS_FILE_ENV} names (one a line), or give each key's digest: "
            + KEY_DIGEST_COMMAND
        )
    return SecretStr(text.lower())


# Given either, a deployment's options drop the other from its defaults (Serve refuses both at once).
SCALING_OPTIONS = {"num_replicas", "autoscaling_config"}

# Every deployment's defaults (Serve's own: 10 s, 30 s, 2 s). A replica whose actor dies is replaced
# at its next health check, so the period bounds how long a crash goes unnoticed (~2 s, not ~10).
# The timeout is for a replica that lives but does not answer (Serve restarts it after three in a
# row): 10 s leaves a loaded event loop room, a wrongly restarted Generator drops every stream.
# A stopping replica looks for the end of its in-flight requests every 0.5 s (it exits that much
# sooner once idle); how long it may wait is AppConfig.graceful_shutdown_timeout_s.
LIFECYCLE_DEFAULTS: dict[str, float] = {
    "health_check_period_s": 2.0,
    "health_check_timeout_s": 10.0,
    "graceful_shutdown_wait_loop_s": 0.5,
}


class AppConfig(BaseModel):
    """Everything `deployments.app:build_app` takes as `args`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: ModelSources = Field(default_factory=ModelSources)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    generator_batch: BatchSettings = BatchSettings()
    vocoder_batch: BatchSettings = BatchSettings(max_batch_size=16, batch_wait_timeout_s=0.005)
    max_text_chars: int = Field(20_000, ge=1)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(600.0, gt=0)
    max_queued_requests: int = Field(
        256,
        ge=1,
        description="Requests in flight per ingress replica before 503: the app's own limit, checked by the "
        "Ingress; Serve's queue limit of each deployment is its options' max_queued_requests.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A request body (JSON or an upload) must arrive within this many seconds of the request's "
        "start, or 408: a client that starts a body and stops does not hold a slot.",
    )
    max_segments_in_flight: int = Field(
        4096,
        ge=1,
        description="Segments (Generator requests) in flight per ingress replica. A request is admitted as a unit "
        "once split: all its segments fit, or it gets 503 + Retry-After before its first byte. Keep the "
        "Generator's max_ongoing_requests + max_queued_requests (if limited) >= this x ingress replicas, so "
        "the Generator never pushes back on an admitted request.",
    )
    voices_db: str = Field(
        "zonos-voices.sqlite3",
        min_length=1,
        description="SQLite file of the voice library (put it on a volume). An absolute path (a leading ~ is "
        "expanded) is used as is; a relative one is resolved on the Voices replica against $ZONOS_DATA_DIR when "
        "that is set (an absolute directory), else ~/.local/share/zonos-serve, never the process's working "
        "directory; the Voices replica logs the absolute path it opens. ':memory:' is a throwaway library.",
    )
    voice_bindings: dict[str, str] = Field(
        default_factory=dict,
        description="OpenAI's built-in voice names (alloy, ash, ...) bound to voices: name -> a library voice's id "
        "or name, or a clip's path (anything holding a '/'; relative paths resolve as voices_db's), which the Voices "
        "replica reads and embeds once at start (it fails to start if it cannot). An unbound name is a fixed "
        "synthetic voice derived from the name (or a library voice of that name); pipeline.voices.BuiltinVoices.",
    )
    default_response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    model_aliases: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] = Field(
        (),
        description="More names OpenAI's routes accept for the model (listed by GET /v1/models), besides "
        "zonos-v0.1, tts-1, tts-1-hd, gpt-4o-mini-tts and their dated snapshots: e.g. what a client is "
        "configured with for another server (kokoro).",
    )
    api_keys: tuple[Annotated[SecretStr, AfterValidator(_key_digest)], ...] = Field(
        (),
        description="The SHA-256 digests of API keys, each 'sha256:' and 64 hex digits, never a key itself: Ray "
        "Serve writes an app's args to its logs in plain text. The keys themselves go in api_keys_file or the "
        "file $ZONOS_API_KEYS_FILE names. When any key is configured (here or in those files), every route but "
        "/healthz, /readyz, /openapi.json, /docs and /web needs `Authorization: Bearer KEY` (401 invalid_api_key "
        "otherwise). A key's digest: " + KEY_DIGEST_COMMAND + ". deployments/api/auth.py.",
    )
    api_keys_file: str | None = Field(
        None,
        min_length=1,
        description="A file of API keys, one a line ('#' starts a comment), read by each Ingress replica at start; "
        "a relative path resolves as voices_db's. Missing, unreadable or empty: the replica fails to start.",
    )
    cors_allowed_origins: tuple[str, ...] = Field(
        (),
        description="Origins that browser pages may call the API from (CORS), each scheme://host[:port] as a "
        "browser sends it (no path, no trailing slash), or '*' for any; none (the default): no CORS headers, "
        "so only pages of the server's own origin (/web) can read its answers. deployments/api/cors.py.",
    )
    graceful_shutdown_timeout_s: float = Field(
        60.0,
        ge=0,
        description="How long a stopping replica (scale-down, update, node drain, shutdown) lets its in-flight "
        "requests finish before Serve kills it; new requests are refused meanwhile (503 + Retry-After). "
        "build_app gives it to every deployment whose options do not set their own. Keep Kubernetes' "
        "terminationGracePeriodSeconds above it.",
    )

    # Serve options, one field per deployment.
    ingress: DeploymentOptions = DeploymentOptions(
        max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5}, **LIFECYCLE_DEFAULTS
    )
    splitter: DeploymentOptions = DeploymentOptions(
        max_ongoing_requests=64, ray_actor_options={"num_cpus": 1}, **LIFECYCLE_DEFAULTS
    )
    generator: DeploymentOptions = DeploymentOptions(
        max_ongoing_requests=512, ray_actor_options={"num_cpus": 1}, **LIFECYCLE_DEFAULTS
    )
    vocoder: DeploymentOptions = DeploymentOptions(
        max_ongoing_requests=128, ray_actor_options={"num_cpus": 1}, **LIFECYCLE_DEFAULTS
    )
    voices: DeploymentOptions = Field(
        DeploymentOptions(
            num_replicas=1, max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5}, **LIFECYCLE_DEFAULTS
        ),
        description="Keep one replica: it owns the SQLite file.",
    )

    @field_validator("voice_bindings")
    @classmethod
    def _voice_bindings(cls, bindings: dict[str, str]) -> dict[str, str]:
        """Each key one of OpenAI's built-in names, each target a clip path or a valid voice reference."""
        return {name: check_voice_binding(name, target) for name, target in bindings.items()}

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, keys: Any) -> Any:
        """One digest or a list; each entry (text, or anything else given by mistake: an unquoted YAML number,
        a mapping) as a SecretStr before it is checked (`_key_digest`), and any other value too, so that
        pydantic's error, which quotes the input it refuses, shows '**********' where a key may be."""
        if isinstance(keys, str | int):
            keys = [keys]
        if isinstance(keys, list | tuple | set | frozenset):
            return [key if isinstance(key, SecretStr) else SecretStr(str(key)) for key in keys]
        return keys if keys is None or isinstance(keys, SecretStr) else SecretStr(str(keys))

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        """Each '*' or an origin as browsers send it (RFC 6454: scheme://host[:port], lower case), so that it
        can match a request's Origin header exactly."""
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: give scheme://host[:port] in lower case, with no path and no "
                    "trailing slash (https://app.example.com, http://localhost:3000), or '*' for any origin"
                )
        return origins

    @field_validator(
        "generator_batch", "vocoder_batch", "ingress", "splitter", "generator", "vocoder", "voices", mode="before"
    )
    @classmethod
    def _over_the_defaults(cls, given: Any, info: ValidationInfo) -> Any:
        """A mapping given for one of these fields replaces its defaults key by key; a dict-valued
        key (ray_actor_options, autoscaling_config) is replaced whole, as Serve's overrides do."""
        if not isinstance(given, dict):
            return given
        defaults = cls.model_fields[info.field_name].default.model_dump(exclude_unset=True)
        if SCALING_OPTIONS & given.keys():
            defaults = {key: value for key, value in defaults.items() if key not in SCALING_OPTIONS}
        return defaults | given
