"""Presidio as an extra source of findings, when `presidio-analyzer` is installed.

Presidio adds what patterns cannot find, above all names and places (spaCy's NER), at a
cost of milliseconds per request: it is off unless `privacy.presidio.enabled` is set.
It needs a spaCy pipeline installed beforehand (`nlp_model`); it is never downloaded here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spillgate.server.privacy.config import PresidioOptions
from spillgate.server.privacy.scanner import Span


class PresidioUnavailable(RuntimeError):
    """Presidio is switched on but cannot run; the message says what to install."""


class PresidioDetector:
    def __init__(self, options: PresidioOptions, rank: int) -> None:
        try:
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        except ImportError:
            raise PresidioUnavailable(
                "privacy.presidio.enabled is true but presidio-analyzer is not installed: "
                "pip install presidio-analyzer, plus the spaCy pipeline named in "
                "privacy.presidio.nlp_model"
            ) from None
        if not _spacy_pipeline_present(options.nlp_model):
            raise PresidioUnavailable(
                f"privacy.presidio.nlp_model {options.nlp_model!r} is neither an installed "
                "spaCy package nor a folder; install it (python -m spacy download NAME) "
                "or point nlp_model at a pipeline folder"
            )
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": options.language, "model_name": options.nlp_model}],
            }
        )
        self._engine: Any = AnalyzerEngine(
            nlp_engine=provider.create_engine(), supported_languages=[options.language]
        )
        self._language = options.language
        self._entities = options.entities or None
        self._threshold = options.score_threshold
        self._rank = rank

    def spans(self, text: str) -> list[Span]:
        results = self._engine.analyze(
            text=text,
            language=self._language,
            entities=self._entities,
            score_threshold=self._threshold,
        )
        return [Span(r.start, r.end, r.entity_type.lower(), self._rank) for r in results]


def _spacy_pipeline_present(name: str) -> bool:
    """Checked first because Presidio would otherwise try to download a missing model."""
    import spacy.util

    return bool(spacy.util.is_package(name)) or Path(name).is_dir()
