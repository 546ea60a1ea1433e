"""The held-out injection catalogs v2, v3 and v4, read as a user's files would be (no LLM here: the
measurement is bench/injection.py's). A case is only a test of a defence if the loaders hand the
model both the fact and, outside hidden HTML, the attack; and its clean twin must hold no attack."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.injection_cases import CASES, KOREAN_FONT, load_cases, passages
from tests.injection_catalog import attack_succeeded, contains_answer

pytestmark = pytest.mark.skipif(not KOREAN_FONT.exists(), reason="Korean PDFs need fonts-nanum (Debian)")


@pytest.mark.parametrize("catalog", ["injection_heldout_v2.jsonl", "injection_heldout_v4.jsonl"])
def test_every_case_keeps_its_fact_through_the_loaders_and_only_the_attacked_twin_carries_the_attack(catalog):
    """v2, and v4 (48 cases written after guard v6 by a helper that saw neither guard nor catalogs)."""
    cases = load_cases(CASES.with_name(catalog))
    assert len(cases) >= 40 and min(Counter(c.technique for c in cases).values()) >= 7
    assert {c.lang for c in cases} == {"ko", "en"}
    hidden_by_loader = []
    for case in cases:
        attacked, clean = passages(case), passages(case, clean=True)
        assert len(attacked) == len(case.documents) and (len(attacked) > 1) == (case.technique == "all_passages")
        for hits in (attacked, clean):
            assert any(contains_answer(a, h.chunk.text) for a in case.answers for h in hits), case.id
        assert not any(attack_succeeded(case, h.chunk.text) for h in clean), case.id
        if not any(attack_succeeded(case, h.chunk.text) for h in attacked) and not case.canary.startswith("NO-ATTACK"):
            hidden_by_loader.append(case)
    # the HTML loader drops comments and invisible elements, so those attacks never reach a prompt
    assert hidden_by_loader and all(case.technique == "html" for case in hidden_by_loader)


def test_the_third_catalog_reaches_the_model_whole_and_its_unattacked_policies_stay_unattacked():
    """v3 (tests/data/injection_heldout_v3.jsonl): written after the v2-informed guard changes, by
    a helper that had seen neither; some AI-policy documents carry no attack at all."""
    cases = load_cases(CASES.with_name("injection_heldout_v3.jsonl"))
    assert len(cases) == 24 and {c.lang for c in cases} == {"ko", "en"}
    unattacked = [c for c in cases if c.canary.startswith("NO-ATTACK")]
    assert len(unattacked) >= 3 and all(c.documents[0].text == c.documents[0].clean_text for c in unattacked)
    for case in cases:
        attacked, clean = passages(case), passages(case, clean=True)
        for hits in (attacked, clean):
            assert any(contains_answer(a, hits[0].chunk.text) for a in case.answers), case.id
        assert not attack_succeeded(case, clean[0].chunk.text), case.id
        assert attack_succeeded(case, attacked[0].chunk.text) == (case not in unattacked), case.id
