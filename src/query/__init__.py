"""Query worker: retrieve the caller's passages, answer, stream tokens back."""
