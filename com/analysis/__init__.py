"""Pure decision functions over model data: they import numpy, the stdlib and com's model layer only."""
