"""The settings per grant year (issue 15): SiSa indicator codes and settlement rules; errors name the setting."""

from __future__ import annotations

import pytest

from services.common.config import SettingError, load_settings
from services.common.year_settings import ANY_YEAR, for_year


def test_indicator_codes_and_settlement_rules_are_read_per_grant_year() -> None:
    settings = load_settings(
        {
            "IDO_SISA_INDICATORS": "2024:C8/01,C8/02,C8/03; *:D1/01,D1/02,D1/03",
            "IDO_SETTLEMENT_RULES": "2024:cap=award,reclaim=paid-minus-settled;2026:cap=none,reclaim=none",
        }
    )
    assert for_year(settings.sisa_indicators, 2024) == ("C8/01", "C8/02", "C8/03")
    assert for_year(settings.sisa_indicators, 2030) == ("D1/01", "D1/02", "D1/03")
    assert for_year(settings.settlement_rules, 2026) == {"cap": "none", "reclaim": "none"}
    assert for_year(settings.settlement_rules, 2025) is None  # no entry and no *: refused when settling


def test_the_defaults_are_no_codes_and_the_usual_settlement_pattern() -> None:
    settings = load_settings({})
    assert dict(settings.sisa_indicators) == {}
    assert dict(settings.settlement_rules) == {ANY_YEAR: {"cap": "award", "reclaim": "paid-minus-settled"}}


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("IDO_SISA_INDICATORS", "2024:C8/01", "year 2024: needs 3 codes"),
        ("IDO_SISA_INDICATORS", "2024:C8/01,C8/02,8-03", "year 2024: '8-03' is no SiSa indicator code"),
        ("IDO_SISA_INDICATORS", "1999:C8/01,C8/02,C8/03", "'1999' is no year"),
        ("IDO_SISA_INDICATORS", "2024:C8/01,C8/02,C8/03;2024:C8/01,C8/02,C8/03", "given twice"),
        ("IDO_SISA_INDICATORS", "C8/01,C8/02,C8/03", "must be <year>:<value>"),
        ("IDO_SETTLEMENT_RULES", "2024:cap=award", "must give both cap= and reclaim="),
        ("IDO_SETTLEMENT_RULES", "2024:cap=half,reclaim=none", "cap must be one of award, none"),
        ("IDO_SETTLEMENT_RULES", "*:cap=award,reclaim=all", "reclaim must be one of paid-minus-settled, none"),
    ],
)
def test_a_bad_year_setting_is_refused_naming_the_setting(setting: str, value: str, reason: str) -> None:
    with pytest.raises(SettingError, match=f"^setting {setting}: ") as refused:
        load_settings({setting: value})
    assert reason in str(refused.value)


@pytest.mark.parametrize("written", ["２０２４", "٢٠٢٤", "20245", "02024", "2O24"])
def test_a_year_is_four_ascii_digits_in_every_per_year_setting(written: str) -> None:
    """``int()`` reads other scripts' digits; a setting must not take them for a year (issue 16, item 5)."""
    with pytest.raises(SettingError) as indicators:
        load_settings({"IDO_SISA_INDICATORS": f"{written}:C8/01,C8/02,C8/03"})
    assert indicators.value.name == "IDO_SISA_INDICATORS"
    with pytest.raises(SettingError) as opened:
        load_settings({"IDO_YEARS_OPEN_BEFORE_AWARD": written + ",2025"})
    assert opened.value.name == "IDO_YEARS_OPEN_BEFORE_AWARD"
