"""What com keeps about a code repository between runs, in one folder the caller chooses (`.com/cache/code/`):
file summaries by blob id, built dependency graphs by code revision, and the paths each commit changed.

Everything here is derived from the code repository alone and can be deleted at any time. Files are written
whole to a temporary name and renamed, so a reader never sees half a file and concurrent writers only race
to write the same content. A graph is small (about 2 MB for 9,000 tests) and loads in tens of milliseconds,
where building it takes a second even with every file's summary cached: a pre-push hook that selects twice
for one revision pays the build once.
"""

from __future__ import annotations

import marshal
import os
import tempfile
import time
from pathlib import Path

from com.code import diff as code_diff
from com.code import graph as code_graph

KEEP_GRAPHS = 8  # newest graph files kept; older ones are removed when a new one is written
COMMITS_VERSION = 1


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: Path):
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None


class CodeCache:
    """Summaries, graphs and changed paths of one code repository's revisions (None folder: memory only)."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.summaries = code_graph.SummaryCache(self.folder / "summaries.bin" if self.folder else None)
        self._commits: dict | None = None
        self._commits_dirty = False
        self.graph_source = None  # "cache" or "built", for the caller's timings

    # -- graphs ---------------------------------------------------------------------------------------
    def _graph_path(self, sha: str) -> Path | None:
        return self.folder / "graphs" / f"{sha}.bin" if self.folder is not None else None

    def graph(self, repo, sha: str | None, worktree: bool = False, changes=None) -> code_graph.CodeGraph:
        """The dependency graph of commit `sha` (from the cache, else built and cached), or of the working
        tree on top of `sha` (built every time: the working tree has no name; `changes`: its diff against `sha`,
        when known)."""
        if worktree or sha is None:
            self.graph_source = "built"
            return code_graph.build_graph(repo, sha or "HEAD", cache=self.summaries, worktree=worktree,
                                          changes=changes)
        path = self._graph_path(sha)
        if path is not None and path.exists():
            data = _read(path)
            if isinstance(data, dict) and data.get("v") == code_graph.GRAPH_VERSION:
                self.graph_source = "cache"
                try:
                    os.utime(path)  # recently used graphs are the ones kept
                except OSError:
                    pass
                return code_graph.CodeGraph.from_data(data)
        graph = code_graph.build_graph(repo, sha, cache=self.summaries)
        self.graph_source = "built"
        if path is not None:
            _write(path, marshal.dumps(graph.to_data()))
            self._prune_graphs()
        return graph

    def _prune_graphs(self) -> None:
        folder = self.folder / "graphs"
        try:
            files = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return
        for old in files[KEEP_GRAPHS:]:
            try:
                old.unlink()
            except OSError:
                pass

    # -- changed paths per commit -----------------------------------------------------------------------
    def _commit_table(self) -> dict:
        if self._commits is None:
            data = _read(self.folder / "commits.bin") if self.folder is not None else None
            ok = isinstance(data, dict) and data.get("v") == COMMITS_VERSION
            self._commits = data["commits"] if ok else {}
        return self._commits

    def commit_files(self, repo, head: str, limit: int = 500) -> dict[str, tuple[str, ...]]:
        """{commit sha: paths it changed against its first parent} for up to `limit` commits back from `head`
        along first parents (newest first). A commit's paths never change, so each is diffed once, ever."""
        import pygit2

        table = self._commit_table()
        out: dict[str, tuple[str, ...]] = {}
        commit = code_diff.resolve_commit(repo, head)
        while commit is not None and len(out) < limit:
            sha = str(commit.id)
            paths = table.get(sha)
            if paths is None:
                paths = tuple(code_diff.changed_files_by_commit(repo, sha, limit=1)[sha])
                table[sha] = paths
                self._commits_dirty = True
            out[sha] = paths
            try:
                commit = commit.parents[0] if commit.parents else None
            except (KeyError, pygit2.GitError):  # a shallow clone ends here
                commit = None
        return out

    def save(self) -> None:
        """Write what changed (summaries, changed paths) back to the folder."""
        if self.folder is None:
            return
        self.summaries.save()
        if self._commits_dirty:
            _write(self.folder / "commits.bin", marshal.dumps({"v": COMMITS_VERSION, "commits": self._commits,
                                                               "saved": time.time()}))
            self._commits_dirty = False
