"""The journal, the truth: a bare git repository of event batches (pygit2), its refs, snapshots, merges and
remotes. Git only: nothing here knows a derived store."""
