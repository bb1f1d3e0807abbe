"""The built wheel (not only the editable install) carries one `spillgate` namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import ROOT


def test_wheel_installs_one_namespace(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "-o",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("spillgate-*.whl"))
    check = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "check_wheel.py"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    # Installed into a bare folder, the wheel imports without the source tree.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import spillgate.server.cli, spillgate.fallback.adapter, "
            "spillgate.models.engine; print(spillgate.server.cli.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(target))
