"""Where in a source CSV a problem is, and how much of it a message may quote.

Messages name a position as the file's line, the way an editor counts lines (LF, CRLF or
CR end one): a quoted newline makes a record span several lines, so the record number
(what the loader counts) and DuckDB's row number (what its CSV errors say) both differ
from the line a person looks for.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

# The longest line the loader reads (DuckDB's max_line_size): a field can be that long.
MAX_LINE_BYTES = 64 * 2**20
# Longest piece of a file's content a message quotes (a header, a value, a line's start).
QUOTE_CHARS = 80


@dataclass(frozen=True)
class CsvFile:
    """The snapshot a stream is loaded from, and the source path messages name."""

    data: Path
    shown: Path

    def line(self, *, record: int | None = None, row: int | None = None) -> int | None:
        """The file line a CSV record starts on, as an editor counts lines (LF, CRLF or CR).

        ``record`` counts data records as the loader numbers them (blank lines skipped);
        ``row`` counts as DuckDB's CSV errors do (every row, the header and blank lines
        included). Quoted newlines make both differ from the file's line. None when the
        file ends first or cannot be scanned.
        """
        csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
        rows = records = 0
        with self.data.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=",", quotechar='"', doublequote=True, strict=False)
            while True:
                start = reader.line_num + 1
                try:
                    fields = next(reader)
                except (StopIteration, csv.Error):
                    return None
                rows += 1
                is_record = bool(fields) and rows > 1
                records += is_record
                if rows == row or (is_record and records == record):
                    return start


def quote(text: str) -> str:
    """A piece of the file's content, shortened, as a Python literal (control characters escaped)."""
    return repr(text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…")


def csv_problem(message: str, csv_file: CsvFile) -> str:
    """The facts of a DuckDB CSV error (file line, reason, the record's start), without its advice.

    DuckDB numbers the rows of the file, not its lines: the line is found in the file.
    """
    facts = message.split("Possible", 1)[0]
    lines = [ln.strip() for ln in facts.splitlines() if ln.strip()]
    where = re.search(r"CSV Error on Line: (\d+)", facts)
    original = next(
        (ln[len("Original Line:") :].strip() for ln in lines if ln.startswith("Original Line:")), ""
    )
    reason = lines[-1] if lines else message.strip()
    if not where:
        return reason[:300]
    row = int(where.group(1))
    line = csv_file.line(row=row)
    position = f"line {line}" if line else f"row {row}"
    return f"{position}: {reason} (line starts {quote(original)})"
