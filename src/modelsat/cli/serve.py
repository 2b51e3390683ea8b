"""`modelsat serve zoo.yaml` or `modelsat serve --zoo DIR` (the routing proxy) and `modelsat validate zoo.yaml`.

`--zoo DIR` serves a zoo folder (`modelsat zoo init|add|remove`) with the shipped router, and takes in a model
added or removed while it serves: the proxy watches the folder's index (checked every second)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modelsat.cli.logs import LogLevel, log_level_option, set_log_level, uvicorn_level
from modelsat.errors import ModelsatError

console = Console()


def config_path(positional: Optional[Path], option: Optional[Path]) -> Path:
    """The zoo YAML given as `modelsat serve ZOO.yaml` or `--config ZOO.yaml` (one of them)."""
    if positional is not None and option is not None and positional != option:
        raise ModelsatError(f"two configs given ({positional} and --config {option}); serve one: "
                            f"modelsat serve {positional}")
    path = positional or option
    if path is None:
        raise ModelsatError("say which zoo to serve: modelsat serve ZOO.yaml (e.g. modelsat serve "
                            "examples/serve-zoo.yaml; check it first with modelsat validate ZOO.yaml)")
    return path


def serve_cmd(
    config: Optional[Path] = typer.Argument(None, help="Zoo YAML (models, upstreams, router, auth, limits), or a "
                                            "zoo folder or its zoo.yaml (as --zoo)."),
    config_option: Optional[Path] = typer.Option(None, "--config", "-c", help="The zoo YAML, as an option "
                                                 "(the same as the argument)."),
    host: str = typer.Option(None, help="Interface to listen on (default: server.host in the config)."),
    port: int = typer.Option(None, help="Port (default: server.port in the config)."),
    log_level: LogLevel = log_level_option(),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes; each holds its own zoo, "
                                "router and circuit breakers, and /metrics merges them."),
    zoo: Optional[Path] = typer.Option(None, "--zoo", help="A zoo folder (modelsat zoo init DIR) to serve with "
                                       "the shipped router; a model added or removed there (modelsat zoo add|remove) "
                                       "is taken in within a second, without a restart."),
) -> None:
    """Serve an OpenAI-compatible endpoint that routes each request to the zoo's best model."""
    set_log_level(log_level)
    given = None
    if (config is None) != (config_option is None):     # the argument or --config, which are the same
        given = config if config is not None else config_option
    if zoo is None and given is not None and zoo_folder_of(given) is not None:
        zoo, config, config_option = zoo_folder_of(given), None, None   # `serve DIR` or `DIR/zoo.yaml`: that zoo
    if zoo is not None:
        if config is not None or config_option is not None:
            raise ModelsatError(f"serve one zoo: a zoo folder (--zoo {zoo}) or a config file, not both")
        return serve_zoo_folder(zoo, host, port, log_level, workers)
    path = config_path(config, config_option)
    import uvicorn

    from modelsat.serve.app import make_app
    from modelsat.serve.config import load_config

    cfg = load_config(path)
    missing = missing_profiles(cfg)
    if missing:
        raise ModelsatError(f"{path}: {len(missing)} profile file(s) missing: " + "; ".join(missing))
    from modelsat.serve.http_server import serve_in_workers, uvicorn_options
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port      # --port 0: any free port (uvicorn logs which)
    if workers > 1:
        console.print(f"modelsat proxy: {len(cfg.models)} models, {workers} worker processes, "
                      f"http://{host}:{port}/v1", soft_wrap=True)
        return serve_in_workers(path, cfg, host, port, workers, log_level=uvicorn_level(log_level))
    app = make_app(cfg)
    console.print(f"modelsat proxy: {len(cfg.models)} models, router "
                  f"{'none (pass-through only)' if app.state.routing is None else app.state.routing.router.name}, "
                  f"http://{host}:{port}/v1", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level=uvicorn_level(log_level), **uvicorn_options(cfg))


def zoo_folder_of(path: Path) -> Optional[Path]:
    """The zoo folder that `path` names: a folder, or the folder whose index (zoo.yaml) it is; None for a file
    that is a serve config."""
    if path.is_dir():
        return path
    return path.parent if is_zoo_index(path) else None


def is_zoo_index(path: Path) -> bool:
    """Whether `path` is the index of a zoo folder (DIR/zoo.yaml written by `modelsat zoo init`), which serves as
    the folder does, rather than a serve config."""
    import yaml

    from modelsat.aptitude.zoo_dir import INDEX_FILE
    if not (path.is_file() and path.name == INDEX_FILE):
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False                  # the serve config's loader reports what is wrong with it
    return isinstance(data, dict) and "test_version" in data   # a serve config has no test_version


def serve_zoo_folder(folder: Path, host: Optional[str], port: Optional[int], log_level: LogLevel,
                     workers: int) -> None:
    """`modelsat serve --zoo DIR`: the folder's models, the shipped router (unless the index's `serve.router`
    names another), changes to the folder taken in while serving."""
    import uvicorn

    from modelsat.serve.app import make_app
    from modelsat.serve.http_server import serve_in_workers, uvicorn_options
    from modelsat.serve.zoo_folder import ZooFolderWatch
    watch = ZooFolderWatch(folder)
    cfg = watch.load()
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    if workers > 1:
        console.print(f"modelsat proxy: zoo {folder} ({len(cfg.models)} models, changes taken in), {workers} "
                      f"worker processes, http://{host}:{port}/v1", soft_wrap=True)
        return serve_in_workers(folder, cfg, host, port, workers, log_level=uvicorn_level(log_level))
    app = make_app(cfg, watch=watch)
    router = app.state.routing.router.name if app.state.routing is not None else "none (pass-through only)"
    console.print(f"modelsat proxy: zoo {folder} ({len(cfg.models)} models, changes taken in), router {router}, "
                  f"http://{host}:{port}/v1", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level=uvicorn_level(log_level), **uvicorn_options(cfg))


def missing_profiles(cfg) -> list[str]:
    """'models[i] (name): path' for every model whose profile file is not there."""
    return [f"models[{i}] ({m.name}): {m.profile}" for i, m in enumerate(cfg.models)
            if m.profile is not None and not Path(m.profile).is_file()]


def validate_cmd(config: Path = typer.Argument(..., help="Zoo YAML to check, or a zoo folder (or its "
                                               "zoo.yaml).")) -> None:
    """Check a serve config or a zoo folder: fields, environment variables (by name), profiles, router. Prints
    no secret."""
    from modelsat.serve.app import load_router
    from modelsat.serve.config import load_config
    from modelsat.serve.upstream import build_upstreams

    folder = zoo_folder_of(config)
    if folder is not None:                         # a zoo folder: the config `serve --zoo` builds from it
        from modelsat.serve.zoo_folder import zoo_folder_config
        cfg = zoo_folder_config(folder)
    else:
        cfg = load_config(config)                  # field errors: raised, printed by the CLI's main
    problems: list[str] = []
    try:
        cfg.client_key_hashes()
    except ModelsatError as exc:
        problems.append(str(exc))
    upstreams = []
    missing = missing_profiles(cfg)
    problems += [f"profile file missing for {m}" for m in missing]
    try:
        upstreams = build_upstreams(cfg)
    except ModelsatError as exc:
        if not missing:      # else it names the first missing profile again
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
