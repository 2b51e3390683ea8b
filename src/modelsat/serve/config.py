"""The proxy's YAML config (a zoo with upstreams, the router folder, auth, limits), validated by pydantic.

Secrets never live in the file: an upstream's API key is the *name* of an environment variable, and client
keys are either environment-variable names or sha256 hex digests of the keys.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelsat.errors import ModelsatError
from modelsat.paths import read_yaml

ROUTING_MODEL = "modelsat"          # the model name that always means "route this request"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# RFC 6750 section 2.1 b64token (token68): the only characters a Bearer credential can carry
TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens."""
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Timeouts(_Strict):
    """Seconds. first_byte: until the upstream's response headers and first body bytes; idle: between chunks."""
    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    idle: float = Field(30.0, gt=0)


class UpstreamModel(_Strict):
    name: str = Field(min_length=1, description="the name clients use; also the profile's model")
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1")
    upstream_model: Optional[str] = Field(None, description="model name sent upstream (default: name)")
    api_key_env: Optional[str] = Field(None, description="NAME of the environment variable holding the key")
    profile: Optional[Path] = Field(None, description="profile JSON; without it the model is pass-through only")
    price: Optional[Union[float, Price]] = Field(None, description="USD per million tokens (one figure or in/out)")
    timeouts: Optional[Timeouts] = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http:// or https:// URL with a host")
        if "@" in v.split("/")[2]:
            raise ValueError("credentials in the URL are not allowed; use api_key_env")
        return v.rstrip("/")

    @field_validator("price")
    @classmethod
    def _non_negative(cls, v):
        if isinstance(v, (int, float)) and v < 0:
            raise ValueError("a price cannot be negative")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), "
                             "never the key itself")
        return v

    @property
    def price_in_out(self) -> Optional[Price]:
        if self.price is None:
            return None
        return self.price if isinstance(self.price, Price) else Price(input=self.price, output=self.price)


class Alias(_Strict):
    """A model name that routes, with its policy (`modelsat.policies`; docs/concepts/probabilities-and-policies.md):
    `policy: threshold` with `delta` and/or `tau`, `policy: tradeoff` with `lambda`, `policy: budget` with `budget`;
    `max_cost` caps each request's expected cost under any policy."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    policy: Literal["max-quality", "tradeoff", "threshold", "budget"] = Field(
        "max-quality", description="how P(good answer) is weighed against expected cost")
    lam: Optional[float] = Field(None, alias="lambda", ge=0, description="tradeoff: probability per USD")
    delta: Optional[float] = Field(None, ge=0, le=1, description="threshold: margin below the best P")
    tau: Optional[float] = Field(None, ge=0, le=1, description="threshold: or an absolute P")
    budget: Optional[float] = Field(None, ge=0, description="budget: mean USD per request (lambda fitted at start)")
    max_cost: Optional[float] = Field(None, ge=0, description="USD: models expected to cost more are never tried")
    candidates: Optional[list[str]] = Field(None, description="subset of models to route among (default all)")
    deadline_s: Optional[float] = Field(None, gt=0, description="this alias's deadlines.request_s")

    @model_validator(mode="before")
    @classmethod
    def _no_cost_weight(cls, data):
        if isinstance(data, dict) and "cost_weight" in data:
            raise ValueError("cost_weight was replaced by policies: use `policy: tradeoff` with `lambda` "
                             "(probability per USD), `policy: threshold` with `delta`, or `policy: budget` with "
                             "`budget` (docs/reference/http-api.md)")
        return data

    @model_validator(mode="after")
    def _knobs_fit_the_policy(self) -> "Alias":
        from modelsat.policies import KnobError, check_knobs
        try:
            check_knobs(self.policy, self.knobs)
        except KnobError as exc:
            raise ValueError(f"{exc.knob}: {exc}") from None
        return self

    @property
    def knobs(self) -> dict:
        """The policy's knobs as `modelsat.policies.check_knobs` reads them."""
        return {"lambda": self.lam, "delta": self.delta, "tau": self.tau, "budget": self.budget}


class Auth(_Strict):
    client_keys_env: list[str] = Field(default_factory=list, description="NAMES of env vars holding client keys")
    client_key_sha256: list[str] = Field(default_factory=list, description="sha256 hex digests of client keys")
    allow_unauthenticated: bool = Field(False, description="serve without client keys (loopback testing only)")

    @field_validator("client_keys_env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"entries must be environment-variable NAMES, never keys "
                                 f"(an entry of {len(name)} characters is not a valid name)")
        return v

    @field_validator("client_key_sha256")
    @classmethod
    def _hashes(cls, v: list[str]) -> list[str]:
        for i, h in enumerate(v):
            if not _SHA256.match(h.lower()):
                raise ValueError(f"entry {i} is not a sha256 hex digest (64 hex characters); "
                                 "compute one with: printf %s \"$KEY\" | sha256sum")
        return [h.lower() for h in v]


class Limits(_Strict):
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_messages: int = Field(256, gt=0)
    max_response_bytes: int = Field(16 * 1_048_576, gt=0,
                                    description="largest non-streamed upstream reply relayed (streams pass through)")
    body_timeout_s: float = Field(15.0, gt=0, description="time for the client to send its whole request body")


class Deadlines(_Strict):
    """Seconds from the request's arrival. request_s: until an upstream answers (the whole reply when not
    streamed, the first bytes when streamed), over every retry and fallback; stream_s: until a stream ends."""
    request_s: float = Field(120.0, gt=0)
    stream_s: float = Field(600.0, gt=0)


class Retries(_Strict):
    budget: int = Field(3, gt=0, description="upstream requests per client request, over every candidate")
    attempts: int = Field(2, ge=0, description="retries of the same upstream after the first try")
    backoff_s: float = Field(0.2, ge=0, description="first wait; doubles each retry")
    max_backoff_s: float = Field(2.0, ge=0)


class CircuitBreakerConfig(_Strict):
    failures: int = Field(5, gt=0, description="consecutive failures that open the circuit")
    cooldown_s: float = Field(30.0, gt=0, description="how long an open circuit skips the upstream")


class Server(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    header_timeout_s: float = Field(10.0, gt=0, description="a connection without a complete request head "
                                                            "after this is closed (idle or half-sent)")
    keep_alive_s: float = Field(5.0, gt=0, description="an idle keep-alive connection is closed after this")


class ServeConfig(_Strict):
    models: list[UpstreamModel] = Field(min_length=1)
    router: Optional[Path] = Field(None, description="router folder written by Router.save")
    aliases: dict[str, Alias] = Field(default_factory=dict, description=f"routing names; `{ROUTING_MODEL}` sets "
                                      "the default name's policy (default max-quality)")
    auth: Auth = Field(default_factory=Auth)
    limits: Limits = Field(default_factory=Limits)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    deadlines: Deadlines = Field(default_factory=Deadlines)
    retries: Retries = Field(default_factory=Retries)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    server: Server = Field(default_factory=Server)
    max_route_batch: int = Field(32, gt=0, description="instructions scored together in one router call")

    @model_validator(mode="before")
    @classmethod
    def _no_default_cost_weight(cls, data):
        if isinstance(data, dict) and "default_cost_weight" in data:
            raise ValueError(f"default_cost_weight was replaced by policies: give the default name its policy as "
                             f"aliases: {{{ROUTING_MODEL}: {{policy: tradeoff, lambda: ...}}}} "
                             "(docs/reference/http-api.md)")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "ServeConfig":
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        routing = {ROUTING_MODEL, *self.aliases}
        clash = sorted(routing & set(names))
        if clash:
            raise ValueError(f"model name(s) {', '.join(clash)} clash with routing aliases")
        for alias, a in self.aliases.items():
            unknown = [c for c in (a.candidates or []) if c not in names]
            if unknown:
                raise ValueError(f"aliases.{alias}.candidates: unknown model(s) {', '.join(unknown)}")
        if not (self.auth.client_keys_env or self.auth.client_key_sha256 or self.auth.allow_unauthenticated):
            raise ValueError("auth: no client keys configured; set auth.client_keys_env (env var names) or "
                             "auth.client_key_sha256, or auth.allow_unauthenticated: true for loopback tests")
        return self

    def timeouts_for(self, model: UpstreamModel) -> Timeouts:
        return model.timeouts or self.timeouts

    def client_key_hashes(self, environ: Optional[dict] = None) -> list[bytes]:
        """sha256 digests of every client key; a named variable that is unset or empty is an error."""
        env = os.environ if environ is None else environ
        out = [bytes.fromhex(h) for h in self.auth.client_key_sha256]
        for name in self.auth.client_keys_env:
            key = env.get(name, "")
            if not key:
                raise ModelsatError(f"auth.client_keys_env: environment variable {name} is not set or empty")
            if not TOKEN68.match(key):
                raise ModelsatError(f"auth.client_keys_env: the key in {name} has a character outside RFC 6750's "
                                    "token set (A-Z a-z 0-9 - . _ ~ + / and trailing =), so no client could send "
                                    "it as 'Authorization: Bearer <key>'; choose another key")
            out.append(hashlib.sha256(key.encode()).digest())
        return out


def _resolve_paths(cfg: ServeConfig, base: Path) -> ServeConfig:
    if cfg.router is not None and not cfg.router.is_absolute():
        cfg.router = base / cfg.router
    for m in cfg.models:
        if m.profile is not None and not m.profile.is_absolute():
            m.profile = base / m.profile
    return cfg


def parse_config(data: object, source: str = "<config>", base_dir: Path | None = None) -> ServeConfig:
    """A validated ServeConfig; errors name the field (models.1.base_url) and never echo values."""
    if not isinstance(data, dict):
        raise ModelsatError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    try:
        cfg = ServeConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"  {where}: {e['msg'].removeprefix('Value error, ')}")
        raise ModelsatError(f"{source}: invalid serve config\n" + "\n".join(lines)) from None
    return _resolve_paths(cfg, base_dir or Path.cwd())


def load_config(path: str | os.PathLike) -> ServeConfig:
    """The config in a YAML file; relative paths in it are resolved against the file's folder."""
    p = Path(path)
    data = read_yaml(p, "serve config")
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)
