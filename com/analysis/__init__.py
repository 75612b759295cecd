"""Pure decision functions over model data (flaky detection, manifestations, healing statistics, lifecycle;
regression selection: scoring, safety rules, budgets, history statistics, metrics).

Modules here import numpy, the standard library and `com.model` only: never the journal, the views or a model,
so each decision is tested as a plain function.
"""
