"""How com opens and locks its own files: flocks shared by processes, SQLite files of derived data."""
