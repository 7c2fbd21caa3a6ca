"""The pure domain: frozen dataclasses and functions, no I/O, no imports from outside core."""
