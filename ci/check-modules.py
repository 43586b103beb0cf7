#!/usr/bin/env python3
"""Checks that the crate's modules depend on each other one way (issue 14).

Reads `use crate::x` and `crate::x::` references in app/src/*.rs and fails, naming the
modules, if the references form a cycle or if the transport (sockets, limits, TLS) reaches
into the pages. main.rs wires everything and is left out.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "app" / "src"
TRANSPORT = {"activation", "server", "stream", "tls", "threads", "privileges", "notify", "shutdown"}
PAGES = {"routes", "status", "metrics", "example_page"}

modules = {p.stem: p for p in SRC.glob("*.rs") if p.stem != "main"}
graph = {}
for name, path in modules.items():
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", path.read_text(), flags=re.S)
    used = set(re.findall(r"\bcrate::(\w+)", text)) & set(modules)
    graph[name] = used - {name}

problems = []
for name in sorted(TRANSPORT & set(graph)):
    for used in sorted(graph[name] & PAGES):
        problems.append(f"{name} (transport) uses {used} (a page)")

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
    print("module dependencies go both ways:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print("modules: no cycle, and the transport uses no page")
