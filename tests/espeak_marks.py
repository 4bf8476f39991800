"""Whether libespeak-ng works here, for the tests that synthesize speech (checked once, on import)."""

from __future__ import annotations

import pytest

from data_scripts import espeak

ESPEAK_OK, ESPEAK_WHY = espeak.espeak_available()
needs_espeak = pytest.mark.skipif(not ESPEAK_OK, reason=f"libespeak-ng.so.1 cannot be loaded: {ESPEAK_WHY}")
