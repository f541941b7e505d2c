"""`hotline stats`: the effectiveness review's statistics (roles triage-analyst and
compliance-officer), as a table, CSV or JSON. Registered by cli/main.py.

The figures and their suppression are triage's (`GET /api/stats`, services/triage/stats.py);
the CSV is written here by the same function that writes the service's own CSV, from the
rows the service answered, so the two are the same file.
"""

from __future__ import annotations

import json
import re

import click

from hotline.shared.config import Settings
from hotline.triage.stats import MONTH, MONTH_COLUMNS, Statistics, csv_text

from .session import bearer_token, call

# Column headings of the table, in MONTH_COLUMNS order.
HEADINGS = {
    "factory": "factory",
    "category": "category",
    "month": "month",
    "cases": "cases",
    "acknowledged": "acked",
    "resolved_or_closed": "resolved",
    "hours_to_acknowledge_median": "ack h med",
    "hours_to_acknowledge_p90": "ack h p90",
    "hours_to_resolve_median": "res h med",
    "hours_to_resolve_p90": "res h p90",
}
TEXT_COLUMNS = {"factory", "category", "month"}  # left-aligned; figures are right-aligned
assert tuple(HEADINGS) == MONTH_COLUMNS, "the table shows every column of the CSV"


def check_month(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(MONTH, value):
        raise click.BadParameter(f"{value!r} is not a month: write YYYY-MM, e.g. 2026-03")
    return value


def table(report: Statistics) -> str:
    """The rows as aligned text columns ("-": no time, too few cases to show one)."""
    cells = [
        ["-" if value is None else str(value) for value in row.model_dump().values()]
        for row in report.rows
    ]
    lines = [list(HEADINGS.values()), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADINGS))]
    aligned = [
        "  ".join(
            value.ljust(width) if column in TEXT_COLUMNS else value.rjust(width)
            for column, value, width in zip(HEADINGS, line, widths, strict=True)
        ).rstrip()
        for line in lines
    ]
    return "\n".join(aligned)


@click.command("stats")
@click.option(
    "--from",
    "first",
    metavar="YYYY-MM",
    callback=check_month,
    help="The first month of receipt to include.",
)
@click.option(
    "--to", "last", metavar="YYYY-MM", callback=check_month, help="The last month to include."
)
@click.option("--factory", help="Only this factory code.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then the rows).")
@click.option("--json", "as_json", is_flag=True, help="Print the service's JSON.")
def stats(
    first: str | None, last: str | None, factory: str | None, as_csv: bool, as_json: bool
) -> None:
    """Statistics for the annual effectiveness review: per factory, category and month of
    receipt, the cases, how many were acknowledged and resolved or closed, and the median
    and 90th percentile hours to acknowledge and to resolve (roles triage-analyst and
    compliance-officer).

    A case counts in each of its categories. Counts of 1 to 4, and counts 1 to 4 short of
    their row's cases, read "<5", and no time is given for fewer than 5 cases, so that no
    figure points at a worker; there are no totals (a total minus the shown cells would
    reveal the hidden ones).
    """
    if as_csv and as_json:
        raise click.UsageError("--csv and --json are alternatives: pick one")
    s = Settings()
    wanted = {"from": first, "to": last, "factory": factory}
    params = {name: value for name, value in wanted.items() if value is not None}
    found = call("GET", f"{s.triage_url}/api/stats", auth=bearer_token(s), params=params)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    report = Statistics.model_validate(found)
    if as_csv:
        click.echo(csv_text(report.rows, MONTH_COLUMNS), nl=False)
    elif not report.rows:
        click.echo("no cases received in these months")
    else:
        click.echo(table(report))
