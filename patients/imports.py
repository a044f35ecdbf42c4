"""Reading spreadsheets for the imports: one reader and one cell validator, shared by the
caseload import page and ``manage.py import_refills``.

The reader takes CSV (UTF-8 with or without a byte-order mark; comma or semicolon) or XLSX
through tablib, refuses files over ``MAX_BYTES`` or ``MAX_ROWS`` as a whole, and gives each row
as a dict of normalised column names with its spreadsheet row number (the header is row 1).
``RowReader`` turns one row's cells into typed values — decimals with a point or a comma, dates
as real date cells or ISO text, times in the clinic's zone — and collects every refusal as
(row, column, value, rule) instead of stopping at the first one.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import tablib

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
XLSX_MAGIC = b"PK\x03\x04"
TRUE = {"yes", "y", "true", "1", "x"}
FALSE = {"no", "n", "false", "0", ""}


class ImportFileError(Exception):
    """The file as a whole cannot be read (size, format, header); its message says why."""


@dataclass(frozen=True)
class CellError:
    row: int
    column: str
    value: str
    rule: str

    def __str__(self) -> str:
        shown = f" ({self.value!r})" if self.value else ""
        return f"row {self.row}, column {self.column}{shown}: {self.rule}"


@dataclass
class Row:
    number: int
    values: dict[str, object]

    def raw(self, column: str) -> object:
        return self.values.get(column)


def normalise_header(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name or "").strip().lower()).strip("_")


def read_table(content: bytes, filename: str = "") -> list[Row]:
    """The rows of a CSV or XLSX file (see the module's docstring)."""
    if len(content) > MAX_BYTES:
        raise ImportFileError(f"The file is {len(content) / 1024 / 1024:.1f} MB; the limit is 5 MB. Split it.")
    if not content.strip():
        raise ImportFileError("The file is empty.")
    if content.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx"):
        dataset = _read_xlsx(content)
    else:
        dataset = _read_csv(content)
    headers = [normalise_header(h) for h in (dataset.headers or [])]
    if not any(headers):
        raise ImportFileError("The first row must name the columns (download the template).")
    if dataset.height > MAX_ROWS:
        raise ImportFileError(f"The file has {dataset.height:,} rows; the limit is {MAX_ROWS:,}. Split it.")
    rows = []
    for index, values in enumerate(dataset, start=2):
        cells = {h: _cell(v) for h, v in zip(headers, values, strict=False) if h}
        if any(v not in (None, "") for v in cells.values()):  # blank lines are skipped
            rows.append(Row(index, cells))
    return rows


def _read_xlsx(content: bytes) -> tablib.Dataset:
    try:
        return tablib.Dataset().load(io.BytesIO(content), format="xlsx")
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise ImportFileError(f"This is not a readable XLSX file ({exc.__class__.__name__}).") from None


def _read_csv(content: bytes) -> tablib.Dataset:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError("The CSV file is not UTF-8: save it as 'CSV UTF-8'.") from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        return tablib.Dataset().load(text, format="csv", delimiter=delimiter)
    except (csv.Error, tablib.InvalidDimensions) as exc:
        raise ImportFileError(f"The CSV file could not be read: {exc}.") from None


def _cell(value: object) -> object:
    if isinstance(value, str):
        return value.strip()
    return value


class RowReader:
    """Typed values from one row's cells; refusals collected in ``errors``."""

    def __init__(self, row: Row, zone: ZoneInfo | None = None):
        self.row = row
        self.zone = zone
        self.errors: list[CellError] = []

    def refuse(self, column: str, rule: str, value: object = None):
        shown = self.row.raw(column) if value is None else value
        self.errors.append(CellError(self.row.number, column, "" if shown is None else str(shown), rule))

    def _blank(self, column: str, required: bool) -> bool:
        value = self.row.raw(column)
        if value is None or value == "":
            if required:
                self.refuse(column, "required")
            return True
        return False

    def text(self, column: str, *, required: bool = False, max_length: int | None = None) -> str:
        if self._blank(column, required):
            return ""
        value = str(self.row.raw(column)).strip()
        if max_length is not None and len(value) > max_length:
            self.refuse(column, f"at most {max_length} characters")
        return value

    def decimal(self, column: str, *, required: bool = False, default: Decimal | None = None) -> Decimal | None:
        if self._blank(column, required):
            return default
        value = self.row.raw(column)
        if isinstance(value, bool):
            self.refuse(column, "not a number")
            return None
        if isinstance(value, int | float):
            return Decimal(repr(value)).normalize() if isinstance(value, float) else Decimal(value)
        text = str(value).replace(" ", "").replace("\u00a0", "")
        if "," in text and "." not in text:
            text = text.replace(",", ".")  # a decimal comma (12,5)
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.refuse(column, "not a number (write 12.5 or 12,5)")
            return None
        if not number.is_finite():
            self.refuse(column, "not a number")
            return None
        return number

    def whole_number(self, column: str, *, default: int = 0) -> int:
        number = self.decimal(column, default=Decimal(default))
        if number is None:
            return default
        if number != number.to_integral_value() or number < 0:
            self.refuse(column, "a whole number of 0 or more")
            return default
        return int(number)

    def date(self, column: str, *, required: bool = False) -> date | None:
        if self._blank(column, required):
            return None
        value = self.row.raw(column)
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.refuse(column, "a date as YYYY-MM-DD (or a date cell)")
            return None

    def instant(self, column: str, *, required: bool = False) -> datetime | None:
        """A time: a datetime cell or ISO text. Without an offset it is read in the clinic's zone
        (``zone``); with no zone given, a time without an offset is refused."""
        if self._blank(column, required):
            return None
        value = self.row.raw(column)
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, date):
            parsed = datetime.combine(value, time())
        else:
            try:
                parsed = datetime.fromisoformat(str(value))
            except ValueError:
                self.refuse(column, "a time as YYYY-MM-DD HH:MM (or a date-time cell)")
                return None
        if parsed.tzinfo is None:
            if self.zone is None:
                self.refuse(column, "give the UTC offset: a clinical time is never guessed")
                return None
            parsed = parsed.replace(tzinfo=self.zone)
        return parsed

    def flag(self, column: str) -> bool:
        value = self.row.raw(column)
        if isinstance(value, bool):
            return value
        text = "" if value is None else str(value).strip().lower()
        if text in TRUE:
            return True
        if text not in FALSE:
            self.refuse(column, "yes or no")
        return False


@dataclass
class RowOutcome:
    """What one row will do (dry run) or did: ``action`` is create, skip or refuse."""

    number: int
    action: str
    label: str = ""
    errors: list[CellError] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
