from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from harness import GatewayProcess, standin_engine_config


@pytest.fixture(scope="session")
def standin_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway in front of one launched stand-in engine, shared by read-only tests.

    Tests that change the stand-in's mode must reset it (see `standin_mode`).
    """
    workdir = tmp_path_factory.mktemp("gateway")
    engine = standin_engine_config("standin", ["standin-model"], args=["--embeddings"])
    config = {"engines": [engine], "aliases": {"gpt-4o-mini": "standin-model"}}
    with GatewayProcess(config, workdir) as gateway:
        yield gateway


@pytest.fixture
def standin_url(standin_gateway: GatewayProcess) -> str:
    return f"http://127.0.0.1:{standin_gateway.config['engines'][0]['port']}"
