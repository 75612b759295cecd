"""Pure decision functions over model data (flaky detection, manifestations, healing statistics, lifecycle; packing
a context pack, a test's pass/fail history; roll-up facts and their narratives; regression selection: scoring,
safety rules, budgets, history statistics, metrics).

Modules here import numpy, the standard library and `com.model` only: never the journal, the views or a model,
so each decision is tested as a plain function.
"""
