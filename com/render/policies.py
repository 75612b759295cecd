"""Text of `com policies`: the list, one policy as YAML, a validated file."""

from __future__ import annotations

from com.render.text import clip, table


def listing(o: dict) -> str:
    return table([[p["id"], p["task"], p["budget_tokens"], p["origin"], clip(p["description"], 70)]
                  for p in o["policies"]], ["id", "task", "budget", "from", "description"])


def shown(o: dict) -> str:
    import yaml

    p = dict(o["policy"])
    source = f"# {p.pop('origin')}: {p.pop('path')}"
    overrides = p.pop("overrides")
    if overrides:
        source += f" (changes {overrides})"
    text = source + "\n" + yaml.safe_dump(p, sort_keys=False, default_flow_style=None, width=110).rstrip()
    return text + "\n# event filter: " + (", ".join(f"{k}={v}" for k, v in o["filter"].items()) or "every event")


def validated(o: dict) -> str:
    p = o["policy"]
    return (f"{o['path']}: valid policy {p['id']} (task {p['task']})"
            + (f", changes the shipped {o['overrides']}" if o["overrides"] else ""))
