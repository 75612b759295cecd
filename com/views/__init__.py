"""Derived, disposable stores that follow the journal through one protocol (`base`): the catalog, the
test-results view and the semantic index."""
