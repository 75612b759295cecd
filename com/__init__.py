"""com: a git-native memory of test runs that turns history into decisions."""

__version__ = "0.1.0"
