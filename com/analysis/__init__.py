"""Pure decision functions over model data (selection scoring, flaky detection, ...): no journal, no views."""
