"""A gateway running as pid 1 (a container's entrypoint, a Kubernetes pod) starts and stops
its engines as it does elsewhere. Both were found by `make image-test` (tests/images/):

- The launched engine asks the kernel for SIGTERM when the gateway dies, and gives up if the
  gateway died before that took effect. It used to read "the gateway died" as "my parent is
  pid 1", always true in a container: every engine exited at once with code 1.
- As pid 1 the gateway adopts the engine's processes whose parent died first (vLLM's resource
  tracker); unreaped, their zombies kept the engine's group alive, and stopping took the
  whole grace plus the SIGKILL wait (25 s, past `docker stop`'s 10).

Here the gateway's own spawn and stop code runs as pid 1 of a new pid namespace.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PREAMBLE = textwrap.dedent(
    """
    import asyncio, os, sys, time, types
    from pathlib import Path
    from spillgate.models.supervisor import EngineProcess, LaunchSpec

    def engine(argv):
        spec = LaunchSpec(argv=argv, log_path=Path(sys.argv[1]))
        return EngineProcess(types.SimpleNamespace(name="e"), spec, session=None)
    """
)

SPAWN_AS_PID1 = PREAMBLE + textwrap.dedent(
    """
    async def main():
        assert os.getpid() == 1, os.getpid()
        process = await engine(["sh", "-c", "echo engine-ran"])._spawn()
        print("exit", await process.wait())

    asyncio.run(main())
    """
)

# The engine leaves a child behind: on SIGTERM both die, the child after its parent, so pid 1
# adopts its zombie.
STOP_AS_PID1 = PREAMBLE + textwrap.dedent(
    """
    async def main():
        assert os.getpid() == 1, os.getpid()
        supervised = engine(["sh", "-c", "sleep 30 & exec sleep 60"])
        supervised.process = await supervised._spawn()
        await asyncio.sleep(0.5)
        start = time.monotonic()
        await supervised.stop(grace_s=3.0)
        print("stopped", round(time.monotonic() - start, 1))

    asyncio.run(main())
    """
)


def as_pid1(script: str, log: Path) -> list[str]:
    """SCRIPT's output, run as pid 1 of a new pid namespace with its own /proc (a container's)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no new pid namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", script, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_an_engine_spawned_by_a_gateway_that_is_pid_1_runs(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    assert as_pid1(SPAWN_AS_PID1, log) == ["exit", "0"]
    assert "engine-ran" in log.read_text()


def test_a_gateway_that_is_pid_1_stops_its_engine_without_waiting_out_the_grace(
    tmp_path: Path,
) -> None:
    word, seconds = as_pid1(STOP_AS_PID1, tmp_path / "engine.log")
    # Before: the adopted zombie kept the group "alive" for the 3 s grace and the 5 s after
    # SIGKILL.
    assert word == "stopped" and float(seconds) < 2.0
