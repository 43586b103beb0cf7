#!/usr/bin/env python3
"""Checks that the crate's modules depend on each other one way (issues 14 and 20).

Every module of app/src belongs to a part of the architecture: the folder it is in
(transport, pages, owner, config) or, for a top-level file, the set named below. Reads the
`crate::` and `super::` paths of each module (its tests left out) and fails, naming the
modules, if a module belongs to no part, if the references form a cycle, if the transport
reaches into the pages or the owner, if a page (the owner's included) reaches into the
server, or if a page reaches into another page. lib.rs, main.rs and portico.rs wire
everything and are left out; the compiler's visibility (`pub(super)`, `pub(crate)`) keeps
each folder's inside to itself, this script the directions between them.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "app" / "src"
FOLDERS = {"transport", "pages", "owner", "config"}
# Top-level modules: what every page is handed, and the one way of writing a file.
TOP = {"device": "device", "durable": "shared"}
WIRING = {"lib", "main", "portico"}
# The modules that answer requests: none uses another.
PAGES = {"pages::status_page", "pages::metrics", "owner::pages"}


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


modules = {module_of(p): p for p in SRC.rglob("*.rs")}
names = set(modules) - WIRING


def resolve(base, path):
    """The longest module that `path` (segments after `base`) names."""
    segments = base + path
    for end in range(len(segments), 0, -1):
        candidate = "::".join(segments[:end])
        if candidate in modules:
            return candidate
    return None


def references(name, text):
    """The modules `name`'s source refers to through crate:: and super:: paths."""
    here = name.split("::")
    # A mod.rs is its folder's module; super of a file in a folder is the folder.
    parent = here if modules[name].name == "mod.rs" else here[:-1]
    parent_of_folder = parent[:-1]
    found = set()
    for prefix, path in re.findall(r"\b(crate|super)::((?:\w+::)*(?:\w+|\{[^}]*\}))", text):
        base = [] if prefix == "crate" else (parent if modules[name].name != "mod.rs" else parent_of_folder)
        head, _, group = path.partition("{")
        head = [s for s in head.split("::") if s]
        paths = [head + [s.strip() for s in item.split("::") if s.strip() and s.strip() != "self"]
                 for item in group.rstrip("}").split(",")] if group else [head]
        for p in paths:
            target = resolve(base, p)
            if target and target != name:
                found.add(target)
    return found


def part(name):
    top = name.split("::")[0]
    return top if top in FOLDERS else TOP.get(name)


graph = {}
for name in sorted(names):
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", modules[name].read_text(), flags=re.S)
    text = re.sub(r"//.*", "", text)
    graph[name] = references(name, text) - WIRING

problems = []
for name in sorted(names):
    if part(name) is None:
        problems.append(f"{name} belongs to no part: put it in one of the folders "
                        f"{', '.join(sorted(FOLDERS))}, or name it in TOP in {sys.argv[0]}")
for name, used in sorted(graph.items()):
    for other in sorted(used):
        if part(name) == "transport" and part(other) in {"pages", "owner", "device"}:
            problems.append(f"{name} (transport) uses {other} ({part(other)})")
        if part(name) in {"pages", "owner"} and other in {"transport::server", "transport::handover"}:
            problems.append(f"{name} ({part(name)}) uses {other}")
        if name in PAGES and other in PAGES:
            problems.append(f"{name} (a page) uses {other} (another page)")

# Depth-first search for a cycle.
state = {}
def visit(node, path):
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
        if state.get(nxt) == "open":
            cycle = path[path.index(nxt):] + [nxt]
            problems.append("cycle: " + " -> ".join(cycle))
        elif nxt not in state:
            visit(nxt, path + [nxt])
    state[node] = "done"
for node in sorted(graph):
    if node not in state:
        visit(node, [node])

for name in sorted(graph):
    print(f"  {name} ({part(name)}): {', '.join(sorted(graph[name])) or '-'}")
if problems:
    print("module dependencies break the rules:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(graph)} modules: each in a part, no cycle, the transport uses no page or owner, "
      "no page uses the server, no page another")
