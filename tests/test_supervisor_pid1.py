"""A gateway running as pid 1 (a container's entrypoint, a Kubernetes pod) starts its engines.

The launched engine asks the kernel for SIGTERM when the gateway dies, and gives up if the
gateway died before that took effect. It used to read "the gateway died" as "my parent is
pid 1", which is always true in a container: every engine exited at once with code 1 (found
by `make image-test`, tests/images/). Here the gateway's own spawn code runs as pid 1 of a
new pid namespace.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SPAWN_AS_PID1 = textwrap.dedent(
    """
    import asyncio, os, sys, types
    from pathlib import Path
    from spillgate.models.supervisor import EngineProcess, LaunchSpec

    async def main():
        assert os.getpid() == 1, os.getpid()
        log = Path(sys.argv[1])
        spec = LaunchSpec(argv=["sh", "-c", "echo engine-ran"], log_path=log)
        engine = EngineProcess(types.SimpleNamespace(name="e"), spec, session=None)
        process = await engine._spawn()
        print("exit", await process.wait())

    asyncio.run(main())
    """
)


def test_an_engine_spawned_by_a_gateway_that_is_pid_1_runs(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([unshare, "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no new pid namespace here: {probe.stderr.decode().strip()}")
    log = tmp_path / "engine.log"
    result = subprocess.run(
        [unshare, "--pid", "--fork", sys.executable, "-c", SPAWN_AS_PID1, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["exit", "0"]
    assert "engine-ran" in log.read_text()
