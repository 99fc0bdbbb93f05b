"""Pure functions on plain data: the attendance rule, unknown-face grouping, evidence and overrides."""
