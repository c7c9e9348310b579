"""Small helpers every plane may use (waiting, consoles, logging); they import no plane."""
