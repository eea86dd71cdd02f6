"""Money in Dutch notation and the dashboard's one chart, drawn server-side as inline SVG.

No chart library and no script: the page works without JavaScript and under a Content Security
Policy that allows none. The chart is cumulative spending by booking date over the grant year
(a step line) against the award (a dashed line), with a table of month-end figures beside it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from markupsafe import Markup, escape

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_eur(cents: int, locale: str = "nl") -> str:
    """1234567 -> '€ 12.345,67' (Dutch) or '€12,345.67' (English); negative amounts start with '-'."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(int(cents)), 100)
    if locale == "en":
        return f"{sign}€{euros:,}.{rest:02d}"
    return f"{sign}€ {euros:,}".replace(",", ".") + f",{rest:02d}"


def format_eur_short(cents: int, locale: str = "nl") -> str:
    """Axis labels: whole euros, or millions with two decimals (a label, never a booked amount)."""
    euros = cents / 100
    if locale == "en":
        return f"€{euros / 1_000_000:.2f} M" if abs(euros) >= 1_000_000 else f"€{round(euros):,}"
    if abs(euros) >= 1_000_000:
        return f"€ {euros / 1_000_000:.2f} M".replace(".", ",")
    return f"€ {round(euros):,}".replace(",", ".")


def percent(part: int, whole: int, locale: str = "nl") -> str:
    if whole <= 0:
        return "–"
    if locale == "en":
        return f"{100 * part / whole:.1f}%"
    return f"{100 * part / whole:.1f} %".replace(".", ",")


@dataclass(frozen=True)
class Step:
    day: date
    cumulative_cents: int


def cumulative_steps(rows: Iterable[Mapping[str, Any]]) -> list[Step]:
    """Per booking day the cumulative spending (journal rows are signed: reversals are negative)."""
    per_day: dict[date, int] = {}
    for row in rows:
        day = date.fromisoformat(str(row["booked_on"]))
        per_day[day] = per_day.get(day, 0) + int(row["amount_cents"])
    total = 0
    steps = []
    for day in sorted(per_day):
        total += per_day[day]
        steps.append(Step(day, total))
    return steps


def month_ends(year: int, steps: list[Step], months: tuple[str, ...] = MONTHS) -> list[tuple[str, int]]:
    """(month, cumulative spending at its last day) for the twelve months of the year."""
    answer = []
    for month in range(1, 13):
        last = date(year, month, calendar.monthrange(year, month)[1])
        cumulative = 0
        for step in steps:
            if step.day <= last:
                cumulative = step.cumulative_cents
        answer.append((months[month - 1], cumulative))
    return answer


def _nice_ceiling(value: int) -> int:
    """A round number of cents at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 100_000_00
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for factor in (1, 2, 2.5, 5, 10):
        if magnitude * factor >= value:
            return int(magnitude * factor)
    return magnitude * 10


def cumulative_chart(
    *, year: int, steps: list[Step], award_cents: int, today: date, title: str, width: int = 720, height: int = 300,
    months: tuple[str, ...] = MONTHS, award_label: str = "award", locale: str = "nl",
) -> Markup:
    left, right, top, bottom = 96, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = date(year, 1, 1), date(year, 12, 31)
    days = (last - first).days + 1
    end = last if today > last else max(first, min(today, last))
    if steps and steps[-1].day > end:
        end = steps[-1].day
    peak = max([award_cents, *(s.cumulative_cents for s in steps), 0])
    low = min([0, *(s.cumulative_cents for s in steps)])
    y_max = _nice_ceiling(int(peak * 1.05))

    def x(day: date) -> float:
        return left + plot_w * ((day - first).days / days)

    def y(cents: int) -> float:
        return top + plot_h * (1 - (cents - low) / (y_max - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title" data-award-cents="{award_cents}" '
        f'data-final-cents="{steps[-1].cumulative_cents if steps else 0}">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for i in range(5):
        cents = low + (y_max - low) * i // 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(cents):.1f}" y2="{y(cents):.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y(cents) + 4:.1f}" text-anchor="end">'
            f"{escape(format_eur_short(cents, locale))}</text>"
        )
    for month in range(1, 13):
        start = date(year, month, 1)
        parts.append(
            f'<line class="grid" x1="{x(start):.1f}" x2="{x(start):.1f}" y1="{top}" y2="{top + plot_h}"/>'
            f'<text class="tick" x="{x(start) + 3:.1f}" y="{height - bottom + 16}">{escape(months[month - 1])}</text>'
        )
    if award_cents > 0:
        parts.append(
            f'<line class="award" x1="{left}" x2="{width - right}" y1="{y(award_cents):.1f}" '
            f'y2="{y(award_cents):.1f}"/>'
            f'<text class="award-label" x="{width - right - 4}" y="{y(award_cents) - 6:.1f}" text-anchor="end">'
            f"{escape(award_label)} {escape(format_eur(award_cents, locale))}</text>"
        )
    path = [f"M{x(first):.1f},{y(0):.1f}"]
    for step in steps:
        path.append(f"H{x(step.day):.1f}V{y(step.cumulative_cents):.1f}")
    path.append(f"H{x(end) + plot_w / days:.1f}")
    parts.append(f'<path class="spent" d="{"".join(path)}"/>')
    for step in steps:
        parts.append(
            f'<circle class="point" cx="{x(step.day):.1f}" cy="{y(step.cumulative_cents):.1f}" r="2.5" '
            f'data-day="{step.day.isoformat()}" data-cents="{step.cumulative_cents}"/>'
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar(value_cents: int, whole_cents: int, *, label: str, width: int = 320, height: int = 14) -> Markup:
    """A horizontal bar: ``value`` as a share of ``whole`` (clipped at the whole, marked when beyond)."""
    share = 0.0 if whole_cents <= 0 else max(0.0, min(value_cents / whole_cents, 1.0))
    beyond = whole_cents > 0 and value_cents > whole_cents
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar{" beyond" if beyond else ""}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f'<rect class="bar-whole" x="0" y="0" width="{width}" height="{height}"/>'
        f'<rect class="bar-part" x="0" y="0" width="{width * share:.1f}" height="{height}"/></svg>'
    )
