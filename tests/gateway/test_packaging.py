"""What ships installs and runs: the wheel, built from this tree and installed non-editable
into a fresh virtualenv, imports every module of the source tree and serves a chat answer
through the installed `spillgate` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from check_wheel import ROOT, problems, source_modules
from harness import GatewayProcess, standin_engine_config


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("spillgate-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed non-editable and the dependencies visible.

    Installing the dependencies from an index would take minutes and need the network, so
    the new venv sees this venv's site-packages through a .pth line instead. The path comes
    after the venv's own site-packages, so the installed `spillgate` is the one imported;
    and Python reads .pth files only in site directories, not in folders a .pth line adds,
    so the editable install's own .pth (the finder that maps `spillgate` onto this tree)
    never runs there. What this cannot see is a dependency the code uses but pyproject.toml
    does not declare (this venv has it): the container image, installed with its
    dependencies, is where that shows.
    """
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
    )
    site = _run(python, "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    dev_sites = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    (Path(site) / "zz_dev_dependencies.pth").write_text("\n".join(dev_sites) + "\n")
    return venv


def _run(python: Path, code: str) -> str:
    done = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, cwd=python.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_wheel_holds_every_source_file(wheel: Path) -> None:
    assert problems(wheel) == []


def test_every_module_imports_from_the_installed_wheel(venv: Path) -> None:
    modules = source_modules()
    assert {"spillgate.server.app", "spillgate.server.ledger.store"} <= set(modules)
    report = _run(
        venv / "bin" / "python",
        f"import {', '.join(modules)}\n"
        "import json, sys\n"
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items()}))",
    )
    loaded: dict[str, str | None] = json.loads(report)
    ours = {name: loaded[name] for name in modules}
    outside = {n: f for n, f in ours.items() if not (f or "").startswith(f"{venv}/")}
    assert not outside, f"imported from outside the fresh venv: {outside}"
    from_tree = [
        f
        for f in loaded.values()
        if f and any(f.startswith(f"{ROOT / d}/") for d in ("core", "server", "models", "fallback"))
    ]
    assert not from_tree, f"the source tree leaked in: {from_tree}"


class InstalledGateway(GatewayProcess):
    """The gateway started by the console script the wheel installed, not from this tree."""

    def __init__(self, venv: Path, config: dict[str, Any], workdir: Path) -> None:
        super().__init__(config, workdir)
        self.script = venv / "bin" / "spillgate"

    def start(self, wait_ready: bool = True, timeout_s: float = 60.0) -> InstalledGateway:
        try:
            super().start(wait_ready, timeout_s)
        except TimeoutError as err:
            raise AssertionError(
                f"the installed gateway did not start:\n{self.logs()[-3000:]}"
            ) from err
        return self

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return subprocess.Popen(
            [str(self.script), "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )


@pytest.fixture
def installed_gateway(venv: Path, tmp_path: Path) -> Iterator[InstalledGateway]:
    engine = standin_engine_config("local", ["tiny"])
    gateway = InstalledGateway(venv, {"engines": [engine]}, tmp_path)
    try:
        yield gateway.start()
    finally:
        gateway.stop()


def test_installed_spillgate_serve_answers_through_openai(
    venv: Path, installed_gateway: InstalledGateway
) -> None:
    shebang = installed_gateway.script.read_text().splitlines()[0]
    assert shebang == f"#!{venv / 'bin' / 'python'}"
    client = openai.OpenAI(base_url=f"{installed_gateway.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "ping from the wheel"}]
    )
    assert raw.parse().choices[0].message.content == "You said: ping from the wheel"
    assert raw.headers["x-spillgate-route"] == "local"
