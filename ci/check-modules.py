#!/usr/bin/env python3
"""Checks that the crate's modules depend on each other one way (issue 14).

Reads `use crate::x` and `crate::x::` references in app/src/*.rs and fails, naming the
modules, if a module belongs to none of the four sets below (or to two, or a set names a
module that is gone), if the references form a cycle, if the transport (sockets, limits,
TLS) reaches into the pages, or if a page (the owner's included) reaches into the server.
main.rs wires everything and is left out.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "app" / "src"
SETS = {
    "transport": {"activation", "server", "stream", "tls", "threads", "privileges", "notify", "shutdown",
                  "handover"},
    "pages": {"routes", "status", "metrics", "example_page"},
    # The owner's login, its pages, the file it is kept in, the common passwords it refuses,
    # and the owner's say in field updates (what the updater reports, what the owner asks).
    "owner": {"auth", "owner", "state", "common_passwords", "updates"},
    # What both sides read: the config, the log, the counts, what a connection tells a page.
    "shared": {"config", "flat_toml", "logging", "stats", "peer"},
}
TRANSPORT, PAGES, OWNER = SETS["transport"], SETS["pages"], SETS["owner"]

modules = {p.stem: p for p in SRC.glob("*.rs") if p.stem != "main"}
graph = {}
for name, path in modules.items():
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", path.read_text(), flags=re.S)
    used = set(re.findall(r"\bcrate::(\w+)", text)) & set(modules)
    graph[name] = used - {name}

problems = []
for name in sorted(modules):
    owners = [s for s, members in SETS.items() if name in members]
    if len(owners) != 1:
        where = " and ".join(owners) or "no set"
        problems.append(f"{name} is in {where}: put it in one of {', '.join(SETS)} in {sys.argv[0]}")
for s, members in SETS.items():
    for gone in sorted(members - set(modules)):
        problems.append(f"{gone} ({s}) is no module in app/src: take it out of {sys.argv[0]}")
for name in sorted(TRANSPORT & set(graph)):
    for used in sorted(graph[name] & PAGES):
        problems.append(f"{name} (transport) uses {used} (a page)")
for name in sorted((PAGES | OWNER) & set(graph)):
    if "server" in graph[name]:
        problems.append(f"{name} (a page) uses server")

# Depth-first search for a cycle.
state = {}
def visit(node, path):
    state[node] = "open"
    for nxt in sorted(graph[node]):
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
    print(f"  {name}: {', '.join(sorted(graph[name])) or '-'}")
if problems:
    print("module dependencies break the rules:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print("modules: each in one set, no cycle, the transport uses no page, no page uses the server")
