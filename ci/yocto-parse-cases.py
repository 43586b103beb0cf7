#!/usr/bin/env python3
"""The portico recipe's parse-time Python, run on the clones a layer meets in the field.

bitbake cannot be fetched in CI, so this takes the recipe's own inline Python out of
yocto-layer/recipes-portico/portico/portico_git.bb (PORTICO_LAYER_CLONE's expression,
portico_describe, the anonymous function) and runs it as bitbake would, with a stand-in
datastore and `bb` module, on:
  1. the layer reached through a symlink (sources/meta-portico -> <clone>/yocto-layer):
     the clone found is the real one, and its commit and version are read;
  2. a copy of the layer outside any clone, and 3. a shallow clone (kas KAS_CLONE_DEPTH,
     repo --depth): the recipe is skipped (bb.parse.SkipRecipe) with a reason that says
     what to do (PORTICO_REPO_DIR), rather than bb.fatal, which stops every recipe's parse;
  4. a commit on a detached HEAD that no branch or tag holds: a warning that bitbake's git
     fetcher will not find it again once DL_DIR holds the clone.
Prints one line a case; exits non-zero on the first that does not hold.

  python3 ci/yocto-parse-cases.py
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "yocto-layer", "recipes-portico", "portico", "portico_git.bb")


class SkipRecipe(Exception):
    pass


class Bb:
    """The parts of bitbake's `bb` module the recipe's Python uses."""

    class parse:
        SkipRecipe = SkipRecipe

    def __init__(self):
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fatal(self, msg):
        raise SystemExit("the recipe calls bb.fatal at parse time, which stops every recipe's parse: " + msg)


class Data:
    def __init__(self, values):
        self.values = dict(values)

    def getVar(self, name):
        value = self.values.get(name)
        # ${NAME} references, as bitbake expands them.
        while isinstance(value, str) and "${" in value:
            value = re.sub(r"\$\{(\w+)\}", lambda m: self.getVar(m.group(1)) or "", value)
        return value

    def setVar(self, name, value):
        self.values[name] = value


def recipe_python():
    """(PORTICO_LAYER_CLONE's expression, the describe function's source, the anonymous body)."""
    text = open(RECIPE).read()
    clone = re.search(r'^PORTICO_LAYER_CLONE := "\$\{@(.*)\}"$', text, re.M)
    describe = re.search(r"^(def portico_describe\(d\):\n(?:    .*\n|\n)+)", text, re.M)
    anon = re.search(r"^python __anonymous\(\) \{\n(.*?)^\}", text, re.M | re.S)
    if not (clone and describe and anon):
        sys.exit("%s: PORTICO_LAYER_CLONE := \"${@...}\", def portico_describe(d) or "
                 "python __anonymous() not found: update ci/yocto-parse-cases.py" % RECIPE)
    return clone.group(1), describe.group(1), "def anonymous(d):\n" + anon.group(1)


def parse(layer, repo_dir=None):
    """The recipe's parse-time Python for a layer at LAYER: (datastore, bb, skip reason)."""
    clone_expr, describe_src, anon_src = recipe_python()
    bb = Bb()
    d = Data({"THISDIR": os.path.join(layer, "recipes-portico", "portico")})
    env = {"os": os, "bb": bb, "d": d}
    d.setVar("PORTICO_LAYER_CLONE", eval(clone_expr, env))
    d.setVar("PORTICO_REPO_DIR", repo_dir or "${PORTICO_LAYER_CLONE}")
    exec(describe_src, env)
    d.setVar("PORTICO_DESCRIBE", env["portico_describe"](d))
    exec(anon_src, env)
    try:
        env["anonymous"](d)
    except SkipRecipe as skip:
        return d, bb, str(skip)
    return d, bb, None


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def check(ok, what):
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        sys.exit(1)


def main():
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    shallow = subprocess.run(["git", "-C", ROOT, "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if shallow == "true":
        # Its clones would be shallow too, and every case would be case 3.
        print("skipped: this checkout is shallow; run git fetch --unshallow for these cases")
        return
    work = tempfile.mkdtemp(prefix="portico-parse-cases.")
    try:
        # A clone of HEAD as a user has it (the checkout may be a worktree or shallow).
        clone = os.path.join(work, "portico")
        git("clone", "-q", "--no-checkout", ROOT, clone, cwd=work)
        git("checkout", "-q", head, cwd=clone)
        git("checkout", "-q", "-B", "main", cwd=clone)

        os.makedirs(os.path.join(work, "sources"))
        link = os.path.join(work, "sources", "meta-portico")
        os.symlink(os.path.join(clone, "yocto-layer"), link)
        d, bb, skip = parse(link)
        describe = d.getVar("PORTICO_DESCRIBE").split()
        check(skip is None and d.getVar("PORTICO_REPO_DIR") == os.path.realpath(clone)
              and describe[0] == head and not bb.warnings,
              "1. through a symlink the layer finds its clone %s, commit %s, version %s"
              % (d.getVar("PORTICO_REPO_DIR"), describe[0][:10], describe[-1]))

        copy = os.path.join(work, "elsewhere", "meta-portico")
        shutil.copytree(os.path.join(clone, "yocto-layer"), copy)
        d, bb, skip = parse(copy)
        check(skip is not None and "PORTICO_REPO_DIR" in skip,
              "2. a copy outside the clone: skipped, saying: %s" % skip)
        d, bb, skip = parse(copy, repo_dir=clone)
        check(skip is None and d.getVar("PORTICO_DESCRIBE").split()[0] == head,
              "2b. the same copy with PORTICO_REPO_DIR set in local.conf builds the clone's commit")

        shallow = os.path.join(work, "shallow")
        git("clone", "-q", "--depth", "1", "file://" + clone, shallow, cwd=work)
        d, bb, skip = parse(os.path.join(shallow, "yocto-layer"))
        check(skip is not None and "shallow" in skip and "PORTICO_REPO_DIR" in skip,
              "3. a shallow clone: skipped, saying: %s" % skip)

        git("checkout", "-q", "--detach", cwd=clone)
        git("-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-q",
            "--allow-empty", "-m", "on a detached HEAD", cwd=clone)
        d, bb, skip = parse(link)
        check(skip is None and len(bb.warnings) == 1 and "no branch or tag" in bb.warnings[0],
              "4. a commit on a detached HEAD: built, with the warning: %s" % " ".join(bb.warnings))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
