"""The code repository the tests ran against: revisions, diffs, test discovery and the dependency graph.

Pure reading of a git repository through pygit2 and of source files through `ast`; nothing here knows
the memory (journal, views) or the CLI.
"""
