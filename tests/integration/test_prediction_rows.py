"""The writer COPYs prediction rows in binary: each value travels as the bytes of its column's type, so
the types the writer names must be the table's, and every value must come back as it was served."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.common.database import connect
from services.inference.metrics import Metrics
from services.inference.rows import CHALLENGER_ROLE, CHAMPION_ROLE, COLUMN_TYPES, COLUMNS, PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter


def test_the_writer_names_the_types_of_the_migrated_table(database_url: str) -> None:
    with connect(database_url) as conn:
        table = dict(
            conn.execute(
                "SELECT attname, atttypid::int FROM pg_attribute"
                " WHERE attrelid = 'predictions'::regclass AND attnum > 0 AND NOT attisdropped"
            ).fetchall()
        )
        named = {
            column: conn.adapters.types[name].oid for column, name in zip(COLUMNS, COLUMN_TYPES, strict=True)
        }
    assert named == {column: table[column] for column in COLUMNS}


def test_rows_come_back_as_they_were_served_fresh_and_replayed(database_url: str, tmp_path: Path) -> None:
    """Whole numbers where floats go (a spool replays what JSON gave back), a shadow row naming its
    champion row, a NaN feature: each value read back equals the one put (latency_ms is a ``real``)."""
    made = datetime.now(UTC)
    champion = uuid.uuid4()
    # id, created_at, version, role, shadow_of, the 8 features, prediction, latency_ms
    whole = (8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23)  # whole numbers in two float columns
    other = (1.5, 2.0, 3.0, 1.0, 9.0, 2.0, 34.1, -118.2)
    served: list[PredictionRow] = [
        (champion, made, 3, CHAMPION_ROLE, None, *whole, 4.526, 0.75),
        (uuid.uuid4(), made, 4, CHALLENGER_ROLE, champion, *other, 1.25, 1.5),
        (uuid.uuid4(), made, 3, CHAMPION_ROLE, None, math.nan, *other[1:], 1.2, 0.25),
    ]
    writer = PredictionWriter(database_url, Spool(tmp_path / "spool", max_bytes=1_000_000), Metrics())
    writer.start()
    try:
        writer.put(served[:2])
        assert writer.wait_idle(15)
        writer._copy(served, staged=True)  # a replay: the row already written is kept once
    finally:
        writer.stop()
    with connect(database_url) as conn:
        back = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM predictions ORDER BY model_version, role"
        ).fetchall()
    expected = sorted(served, key=lambda row: (row[2], row[3]))
    assert len(back) == 3
    for got, want in zip(back, expected, strict=True):
        assert got[:5] == want[:5]
        assert all(
            g == w or (math.isnan(g) and math.isnan(w)) for g, w in zip(got[5:], want[5:], strict=True)
        )
