"""Framework- and Qt-free helpers: dtypes, slicing, statistics, export/import, atomic writes."""
