"""Language verification with py3langid, restricted to the corpus languages.

Restricting the label set to the configured languages makes the decision a choice among the
languages we actually expect (far more reliable than open-set identification on medical text full of
Latin and Greek terms). Texts shorter than ``min_chars`` are not checked (terminology lines are short
and identification on them is noise); a disagreement below ``min_confidence`` is counted, not acted on.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyclinic.data.config import LangIdConfig
from polyclinic.logging_utils import get_logger

log = get_logger("data.langid")


@dataclass
class LangDecision:
    checked: bool
    detected: str | None = None
    confidence: float = 0.0


class LanguageVerifier:
    def __init__(self, languages: list[str], cfg: LangIdConfig):
        self.cfg = cfg
        self.languages = list(languages)
        self.supported: list[str] = []
        self._ident = None
        if not cfg.enabled:
            return
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        known = set(ident.nb_classes)
        self.supported = [x for x in self.languages if x in known]
        unsupported = [x for x in self.languages if x not in known]
        if unsupported:
            log.warning("py3langid does not know %s: documents in these languages are not verified", unsupported)
        if len(self.supported) >= 2:
            ident.set_languages(self.supported)
            self._ident = ident
        else:
            log.info("language verification off: fewer than two verifiable languages (%s)", self.supported)

    @property
    def active(self) -> bool:
        return self._ident is not None

    def check(self, text: str, declared: str) -> LangDecision:
        if self._ident is None or declared not in self.supported or len(text) < self.cfg.min_chars:
            return LangDecision(checked=False)
        lang, prob = self._ident.classify(text[: self.cfg.max_chars])
        return LangDecision(checked=True, detected=str(lang), confidence=float(prob))
