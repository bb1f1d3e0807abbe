"""The `privacy:` configuration section and the scanner it builds."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from spillgate.server.config_base import Strict
from spillgate.server.privacy.detectors import BUILTIN, BUILTIN_KINDS, Detector
from spillgate.server.privacy.scanner import ExtraDetector, Scanner


def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {err}") from None


class CustomPattern(Strict):
    """A detector of your own: what it matches counts as personal data of kind `name`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, pattern: str) -> str:
        _compiled(pattern)
        return pattern


class PresidioOptions(Strict):
    """Microsoft Presidio's analyzer, adding its findings to the built-in ones."""

    enabled: bool = False
    #: The spaCy pipeline Presidio runs: an installed package name or a folder.
    nlp_model: str = "en_core_web_lg"
    language: str = "en"
    #: Presidio entity types to report (PERSON, LOCATION, ...); empty: all it knows.
    entities: list[str] = Field(default_factory=list)
    score_threshold: float = Field(0.5, ge=0, le=1)


class PrivacyConfig(Strict):
    """The top-level `privacy:` section: what counts as personal data, and what happens."""

    #: Built-in detectors to turn off, by kind (`phone`, `de_tax_id`, ...).
    disabled: list[str] = Field(default_factory=list)
    custom: list[CustomPattern] = Field(default_factory=list)
    #: Regular expressions; a finding that one of them matches in full is not a finding.
    allow: list[str] = Field(default_factory=list)
    presidio: PresidioOptions = Field(default_factory=PresidioOptions)
    #: Look for personal data and secrets in every request that could spill.
    detect: bool = True
    #: `keep-local`: such requests never leave the box. `redact-then-spill`: placeholders
    #: replace the findings before a cloud target, originals come back in the answer.
    policy: Literal["keep-local", "redact-then-spill"] = "keep-local"
    #: Model ids (client-facing) whose requests never leave the box.
    on_prem_models: list[str] = Field(default_factory=list)
    #: Bodies larger than this are scanned in a worker thread, so the event loop keeps
    #: serving other clients meanwhile.
    thread_above_bytes: int = Field(64 * 1024, ge=0)
    #: A scan that takes longer counts as a finding (fail closed). A backstop for a runaway
    #: custom pattern: the built-in detectors read hostile text at about 1 MB/s or faster.
    scan_timeout_s: float = Field(30.0, gt=0)

    @field_validator("disabled")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in BUILTIN_KINDS]
        if unknown:
            raise ValueError(
                f"unknown detector {', '.join(map(repr, unknown))}; "
                f"the built-in ones are: {', '.join(BUILTIN_KINDS)}"
            )
        return kinds

    @field_validator("allow")
    @classmethod
    def _valid_allow(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            _compiled(pattern)
        return patterns


def build_scanner(config: PrivacyConfig) -> Scanner:
    """The scanner this configuration describes; raises PresidioUnavailable if it cannot."""
    detectors: list[Detector] = [d for d in BUILTIN if d.kind not in config.disabled]
    detectors += [
        Detector(c.name, _compiled(c.pattern), lambda value: len(value)) for c in config.custom
    ]
    extra: ExtraDetector | None = None
    if config.presidio.enabled:
        from spillgate.server.privacy.presidio import PresidioDetector

        extra = PresidioDetector(config.presidio, rank=len(detectors))
    return Scanner(detectors, allow=config.allow, extra=extra)
