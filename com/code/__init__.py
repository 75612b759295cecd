"""The code repository the tests ran against: revisions, and (for selection) what changed and what depends
on it."""
