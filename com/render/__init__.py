"""Human renderings of use-case results (their `to_json()` dicts), shared by every front end: each function
returns text (or None for nothing to show)."""
