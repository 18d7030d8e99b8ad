"""One module per task; each exposes SPEC, a TaskSpec."""
