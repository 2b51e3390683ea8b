"""`modelsat ui --zoo DIR`: the web console (the Route, Zoo and Results pages) for a zoo folder, on this
machine only (127.0.0.1). It is the proxy of `modelsat serve --zoo DIR` with the console at /ui."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modelsat.cli.logs import LogLevel, log_level_option, set_log_level, uvicorn_level

console = Console()
LOOPBACK = "127.0.0.1"


def ui_cmd(
    zoo: Path = typer.Option(..., "--zoo", help="A zoo folder (modelsat zoo init DIR): its models are routed "
                             "and shown, and models added or removed on the Zoo page are written to it."),
    port: int = typer.Option(8800, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    results: Optional[list[Path]] = typer.Option(None, "--results", help="A benchmark folder (modelsat "
                                                 "benchmark --out DIR) for the Results page; repeat for several."),
    log_level: LogLevel = log_level_option(),
) -> None:
    """Open the web console for a zoo folder at http://127.0.0.1:PORT/ui (this machine only).

    Sign in with the client key in $MODELSAT_CLIENT_KEY; when it is not set, a key is made for this run and
    printed here once. The page and everything it loads come from the package: it works offline."""
    import uvicorn

    from modelsat.aptitude.zoo_dir import DEFAULT_CLIENT_KEY_ENV
    from modelsat.serve.http_server import uvicorn_options
    from modelsat.serve.ui import asset_bytes, console_app
    set_log_level(log_level)
    env = dict(os.environ)
    made_key = None
    if not env.get(DEFAULT_CLIENT_KEY_ENV):
        made_key = env[DEFAULT_CLIENT_KEY_ENV] = secrets.token_urlsafe(24)
    app = console_app(zoo, results or [], environ=env)
    router = app.state.routing.router.name if app.state.routing is not None else "none"
    console.print(f"modelsat console: zoo {zoo} ({len(app.state.upstreams)} models, router {router}), "
                  f"{len(results or [])} benchmark folder(s); page {asset_bytes():,} bytes, all from the package",
                  highlight=False, soft_wrap=True)
    if made_key:
        console.print(f"sign in with this key (made for this run; set {DEFAULT_CLIENT_KEY_ENV} to choose one): "
                      f"{made_key}", highlight=False, soft_wrap=True)
    else:
        console.print(f"sign in with the key in ${DEFAULT_CLIENT_KEY_ENV}", highlight=False)
    from modelsat.serve.zoo_folder import zoo_folder_config
    cfg = zoo_folder_config(zoo)
    port = port or free_port()
    console.print(f"open http://{LOOPBACK}:{port}/ui", highlight=False)
    uvicorn.run(app, host=LOOPBACK, port=port, log_level=uvicorn_level(log_level), **uvicorn_options(cfg))


def free_port() -> int:
    """A port on 127.0.0.1 that is free now (`--port 0`), so the address printed is the one served."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def register(app: typer.Typer) -> None:
    app.command("ui")(ui_cmd)
