"""Reading a settlement report (CSV, DESIGN.md's columns) strictly: a file with anything we
could not book faithfully is refused whole, naming the line and the field, before anything
is imported.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import httpx

from domain.inputs import ascii_int, unstorable
from domain.money import MAX_AMOUNT
from domain.reconciliation import ROW_TYPES, ReportRow

COLUMNS = (
    "batch_id",
    "booked_at",
    "type",
    "psp_reference",
    "merchant_reference",
    "currency",
    "gross",
    "fee",
    "net",
)
MAX_BYTES = 64 * 1024 * 1024
BATCH_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REFERENCE = re.compile(r"^[\x21-\x7e]{1,255}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


class InvalidReport(Exception):
    """The report cannot be read as it is; nothing was imported."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}, {field}: {message}")
        self.line, self.field, self.message = line, field, message


DEFAULT_SPAN = timedelta(days=3)


def pull(psp_url: str, start: datetime | None, end: datetime) -> bytes:
    """The report for [start, end) from a PSP speaking the simulator's contract (start:
    three days before end)."""
    if not psp_url:
        raise ValueError("pulling the report needs PAYMENTS_PSP_URL (the simulator); use --file")
    start = start or end - DEFAULT_SPAN
    params = {"from": _iso(start), "to": _iso(end)}
    with httpx.Client(base_url=psp_url, timeout=60) as client:
        response = client.get("/v1/reports/settlement", params=params)
        response.raise_for_status()
        if len(response.content) > MAX_BYTES:
            raise ValueError("the report is too large")
        return response.content


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(data: bytes) -> list[ReportRow]:
    """Every row of the report, or InvalidReport for the first thing wrong in it."""
    if len(data) > MAX_BYTES:
        raise InvalidReport(0, "file", f"larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidReport(0, "file", "not UTF-8 text") from None
    if unstorable(text):
        raise InvalidReport(0, "file", "holds characters we cannot store")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise InvalidReport(1, "header", f"the columns must be {','.join(COLUMNS)}")
        return [_row(reader.line_num, cells) for cells in reader if cells]
    except csv.Error as error:
        raise InvalidReport(reader.line_num, "file", f"not CSV: {error}") from None


def _row(line: int, cells: list[str]) -> ReportRow:
    if len(cells) != len(COLUMNS):
        raise InvalidReport(line, "row", f"{len(cells)} fields, {len(COLUMNS)} expected")
    fields = dict(zip(COLUMNS, cells, strict=True))

    def text(name: str, pattern: re.Pattern[str], *, empty: bool = False) -> str:
        value = fields[name]
        if not (empty and value == "") and not pattern.match(value):
            raise InvalidReport(line, name, "missing or malformed")
        return value

    def amount(name: str) -> int:
        value = fields[name]
        number = ascii_int(value.removeprefix("-"), high=MAX_AMOUNT)
        if number is None:
            raise InvalidReport(line, name, f"must be an integer within ±{MAX_AMOUNT}")
        return -number if value.startswith("-") else number

    kind = fields["type"]
    if kind not in ROW_TYPES:
        raise InvalidReport(line, "type", f"must be one of {', '.join(ROW_TYPES)}")
    row = ReportRow(
        batch_id=text("batch_id", BATCH_ID),
        booked_at=_moment(line, fields["booked_at"]),
        type=kind,
        psp_reference=text("psp_reference", REFERENCE),
        merchant_reference=text("merchant_reference", REFERENCE, empty=True),
        currency=text("currency", CURRENCY),
        gross=amount("gross"),
        fee=amount("fee"),
        net=amount("net"),
    )
    if row.net != row.gross + row.fee:
        raise InvalidReport(line, "net", "must be gross + fee")
    return row


def _moment(line: int, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReport(line, "booked_at", "must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidReport(line, "booked_at", "must say its time zone")
    return moment.astimezone(UTC)
