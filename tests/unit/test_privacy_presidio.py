"""Presidio as an optional extra detector: off by default, clear errors when it cannot run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spillgate.server.privacy import PrivacyConfig, build_scanner
from spillgate.server.privacy.presidio import PresidioUnavailable


def presidio_config(**options: object) -> PrivacyConfig:
    return PrivacyConfig.model_validate({"presidio": {"enabled": True, **options}})


def test_without_presidio_installed_enabling_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # import fails as if absent
    with pytest.raises(PresidioUnavailable, match="pip install presidio-analyzer"):
        build_scanner(presidio_config())


def test_presidio_is_off_unless_switched_on() -> None:
    text = "server at 10.1.2.3, mail bob@corp.io"
    payload = {"model": "m", "messages": [{"role": "user", "content": text}]}
    assert build_scanner(PrivacyConfig()).scan(payload).counts == {"email": 1}


@pytest.fixture(scope="module")
def blank_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spaCy pipeline without a model: Presidio's pattern recognizers run, NER finds
    nothing. Nothing is downloaded."""
    pytest.importorskip("presidio_analyzer")
    import spacy

    folder = tmp_path_factory.mktemp("spacy-blank-en")
    spacy.blank("en").to_disk(folder)
    return folder


def test_presidio_findings_add_to_the_builtin_ones(blank_pipeline: Path) -> None:
    scanner = build_scanner(presidio_config(nlp_model=str(blank_pipeline), entities=["IP_ADDRESS"]))
    text = "server at 10.1.2.3, mail bob@corp.io"
    payload = {"model": "m", "messages": [{"role": "user", "content": text}]}
    assert scanner.scan(payload).counts == {"email": 1, "ip_address": 1}
    redacted, vault = scanner.redact(payload)
    assert redacted["messages"][0]["content"] == "server at <IP_ADDRESS_1>, mail <EMAIL_1>"
    assert vault.restore_text("<IP_ADDRESS_1>") == "10.1.2.3"


def test_a_missing_spacy_pipeline_is_named_not_downloaded(tmp_path: Path) -> None:
    pytest.importorskip("presidio_analyzer")
    missing = tmp_path / "no-such-pipeline"
    with pytest.raises(PresidioUnavailable, match="neither an installed spaCy package"):
        build_scanner(presidio_config(nlp_model=str(missing)))
