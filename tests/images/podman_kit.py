"""Podman with the project's own configuration and storage (.images/), and the small pieces
the image test builds on: commands echoed or logged, image inspection, HTTP probes, clean
stops. The steps themselves are in driver.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".images"
LOGS = STATE / "logs"

#: The host's CA bundle (it holds this machine's TLS-intercepting CA): mounted into builds
#: only, never copied into an image.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = "/run/build-ca.crt"

#: podman stop's grace before SIGKILL (containers.conf's default, not changed here).
STOP_GRACE_S = 10


class Failed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def podman_env() -> dict[str, str]:
    for folder in ("storage", "run", "tmp", "logs"):
        (STATE / folder).mkdir(parents=True, exist_ok=True)
    # runc, not crun (crun refuses this machine's hybrid cgroups); ulimits root may set here
    # (no CAP_SYS_RESOURCE); no systemd or journald to rely on.
    (STATE / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{STATE}/events.log"\n'
        f'tmp_dir = "{STATE}/tmp"\n'
        "[network]\n"
        'network_backend = "netavark"\n'
    )
    (STATE / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{STATE}/storage"\nrunroot = "{STATE}/run"\n'
    )
    # Short names resolve to docker.io, as with Docker: the stand-ins carry those names, so
    # `FROM python:3.11-slim-bookworm` finds the local image and nothing is pulled.
    (STATE / "registries.conf").write_text(
        'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n'
    )
    return {
        **os.environ,
        "CONTAINERS_CONF": str(STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(STATE / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(STATE / "registries.conf"),
        # HEALTHCHECK is kept in the Docker image format only (OCI has none).
        "BUILDAH_FORMAT": "docker",
    }


ENV: dict[str, str] = {}


#: Commands echoed as they run (docs/deploy.md quotes them); inspections are not.
ECHOED = {"run", "stop", "healthcheck", "import", "tag"}


def podman(*args: str, check_rc: bool = True, timeout: float = 120) -> str:
    if args[0] in ECHOED:
        print(f"$ podman {' '.join(args)}", flush=True)
    result = subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )
    if check_rc and result.returncode != 0:
        raise Failed(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result.stdout


def logged(argv: list[str], log: str, timeout: float, cwd: Path = ROOT) -> None:
    """Run a long command with its output in .images/logs/LOG; its tail on failure."""
    path = LOGS / log
    print(f"$ {' '.join(argv)}\n  (output: {path.relative_to(ROOT)})", flush=True)
    with path.open("w") as out:
        result = subprocess.run(
            argv, env=ENV, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd
        )
    if result.returncode != 0:
        tail = "".join(path.read_text().splitlines(keepends=True)[-40:])
        raise Failed(f"{argv[0]} {argv[1]}: exit {result.returncode}\n{tail}")


def build(containerfile: Path, tag: str, log: str, *extra: str, context: Path = ROOT) -> None:
    argv = ["podman", "build", "-f", str(containerfile), "-t", tag, *extra, str(context)]
    logged(argv, log, timeout=3600)


def inspect(image: str) -> dict[str, Any]:
    """The image's configuration, its healthcheck included (podman keeps that beside it)."""
    found = json.loads(podman("image", "inspect", image))[0]
    config: dict[str, Any] = found["Config"]
    config.setdefault("Healthcheck", found.get("Healthcheck"))
    return config


def ca_args() -> list[str]:
    return ["-v", f"{HOST_CA}:{BUILD_CA}:ro"]


def from_line(dockerfile: Path) -> str:
    (base,) = [ln.split()[1] for ln in dockerfile.read_text().splitlines() if ln[:5] == "FROM "]
    return base


def qualified(name: str) -> str:
    """docker.io's full name for a short one, which a stand-in must be tagged with."""
    if "/" not in name:
        return f"docker.io/library/{name}"
    first = name.split("/")[0]
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def logs(container: str, *args: str) -> str:
    """The container's output: podman gives its stdout and its stderr (the gateway's log) apart."""
    result = subprocess.run(
        ["podman", "logs", *args, container], env=ENV, capture_output=True, text=True, timeout=60
    )
    return result.stdout + result.stderr


def running(container: str) -> bool:
    return podman("inspect", "--format", "{{.State.Running}}", container).strip() == "true"


def wait_for(
    url: str, container: str, timeout_s: float, want: int = 200, engine_log: str = ""
) -> float:
    """Seconds until URL answers `want`; fails at once if the container exits, or, given the
    engine's log file, once the engine has exited twice."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        check(running(container), f"{container} exited:\n{logs(container)[-4000:]}")
        if engine_log and logs(container).count("exited (code") >= 2:
            tail = podman("exec", container, "tail", "-n", "40", engine_log, check_rc=False)
            raise Failed(f"the engine keeps exiting; {engine_log}:\n{tail}")
        try:
            status, _ = get(url)
            if status == want:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    raise Failed(f"{url} did not answer {want} in {timeout_s} s:\n{logs(container)}")


#: A clean stop: uvicorn finishes its shutdown (the engines stopped), then raises the SIGTERM
#: it caught again. As pid 1 the kernel ignores that and the gateway exits 0; under an init
#: (compose's `init: true`) it dies of it: 143. SIGKILL after the grace would be 137.
CLEAN_EXIT = (0, 143)


def stop_cleanly(container: str) -> float:
    """`podman stop` (SIGTERM, then SIGKILL after the grace): the gateway exits in time."""
    start = time.monotonic()
    podman("stop", container, timeout=STOP_GRACE_S + 30)
    return check_clean_exit(container, time.monotonic() - start)


def check_clean_exit(container: str, took: float) -> float:
    state = json.loads(podman("inspect", container))[0]["State"]
    print(f"  stopped in {took:.1f} s, exit code {state['ExitCode']}, {state['Status']}")
    check(state["Status"] == "exited", f"{container} is {state['Status']} after the stop")
    text = logs(container)
    check(
        state["ExitCode"] in CLEAN_EXIT and "Finished server process" in text,
        f"exit {state['ExitCode']} (137: SIGKILL after the grace)\n{text[-3000:]}",
    )
    check(took < STOP_GRACE_S, f"stop took {took:.1f} s: the grace is {STOP_GRACE_S} s")
    return took


def remove(*containers: str) -> None:
    for name in containers:
        podman("rm", "-f", "-v", "--ignore", name, check_rc=False)
