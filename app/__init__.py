"""ANIL Studio desktop app (PySide6). All model work lives in `anil_engine`."""
