"""`modelsat serve --config zoo.yaml` (the routing proxy) and `modelsat validate zoo.yaml` (check it)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from modelsat.errors import ModelsatError

console = Console()


def serve_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="Zoo YAML: models, upstreams, router, auth, limits."),
    host: str = typer.Option(None, help="Interface to listen on (default: server.host in the config)."),
    port: int = typer.Option(None, help="Port (default: server.port in the config)."),
) -> None:
    """Serve an OpenAI-compatible endpoint that routes each request to the zoo's best model."""
    import uvicorn

    from modelsat.serve.app import make_app
    from modelsat.serve.config import load_config

    cfg = load_config(config)
    app = make_app(cfg)
    host, port = host or cfg.server.host, port or cfg.server.port
    console.print(f"modelsat proxy: {len(cfg.models)} models, router "
                  f"{'none (pass-through only)' if app.state.routing is None else app.state.routing.router.name}, "
                  f"http://{host}:{port}/v1", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)


def validate_cmd(config: Path = typer.Argument(..., help="Zoo YAML to check.")) -> None:
    """Check a serve config: fields, environment variables (by name), profiles, router. Prints no secret."""
    from modelsat.serve.app import load_router
    from modelsat.serve.config import load_config
    from modelsat.serve.upstream import build_upstreams

    cfg = load_config(config)                      # field errors: raised, printed by the CLI's main
    problems: list[str] = []
    try:
        cfg.client_key_hashes()
    except ModelsatError as exc:
        problems.append(str(exc))
    upstreams = []
    try:
        upstreams = build_upstreams(cfg)
    except ModelsatError as exc:
        problems.append(str(exc))
    router = None
    try:
        router = load_router(cfg)
    except ModelsatError as exc:
        problems.append(str(exc))
    if router is not None and upstreams and not any(u.profile for u in upstreams):
        problems.append("router: a router is configured but no model has a profile")
    for p in problems:
        console.print(f"[red]error[/] {p}", highlight=False, soft_wrap=True)
    if problems:
        raise ModelsatError(f"{config}: {len(problems)} problem(s), listed above")
    routable = sum(1 for u in upstreams if u.profile is not None)
    console.print(f"[green]ok[/] {config}: {len(cfg.models)} models ({routable} routable), router "
                  f"{router.name if router else 'none (pass-through only)'}, "
                  f"{len(cfg.auth.client_keys_env) + len(cfg.auth.client_key_sha256)} client key(s)", highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("validate")(validate_cmd)
