"""Install DuckDB's spatial extension for the BigQuery emulator, from a file, offline.

Run with the emulator's own interpreter (``.venv-bqemulator/bin/python``) and the ``HOME``
the emulator will run with: ``make install`` does both. ``bqemulator start`` runs
``INSTALL spatial; LOAD spatial`` and refuses to start without it; ``INSTALL`` downloads the
extension unless DuckDB finds it already installed in its extension directory
(``$HOME/.duckdb/extensions/<duckdb version>/<platform>/``). The ``duckdb-extension-spatial``
package ships the built extension for one DuckDB release
(``duckdb_extension_spatial/extensions/v<version>/spatial.duckdb_extension``); installing
that file puts it where the emulator's ``INSTALL spatial`` finds it, so nothing is downloaded.
Only the standard library and DuckDB are imported.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    import duckdb
    import duckdb_extension_spatial

    version = f"v{duckdb.__version__}"
    shipped = (
        Path(duckdb_extension_spatial.__file__).parent / "extensions" / version / "spatial.duckdb_extension"
    )
    if not shipped.is_file():
        found = sorted(p.name for p in (shipped.parent.parent).glob("v*"))
        print(
            f"duckdb-extension-spatial has no extension for DuckDB {version} (it ships {found}): "
            "pin both to the same release in constraints-bqemulator.txt",
            file=sys.stderr,
        )
        return 1
    con = duckdb.connect()
    try:
        con.execute("INSTALL '" + str(shipped).replace("'", "''") + "'")
        con.execute("LOAD spatial")
        row = con.execute(
            "select install_path from duckdb_extensions() where extension_name = 'spatial' and loaded"
        ).fetchone()
    finally:
        con.close()
    if not row:
        print("the spatial extension was installed but does not load", file=sys.stderr)
        return 1
    print(f"DuckDB {version}: spatial extension installed at {row[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
