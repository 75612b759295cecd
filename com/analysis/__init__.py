"""Pure decision functions over model data (packing, and later flaky detection, selection, narratives): they import
nothing of com but the model and its errors, never the journal or the views."""
