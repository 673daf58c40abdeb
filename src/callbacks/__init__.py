"""The project's own Lightning callbacks."""
