"""Command-line edges (L4): argument parsing, output, exit codes. The only code that exits."""
