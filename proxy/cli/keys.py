"""``tollgate keys new|hash``: make managed keys and the ``[[keys]]`` entries that admit them.

The plaintext key goes to standard error and the entry, which holds only the key's hash, to
standard output: ``tollgate keys new --user alice >> config.toml`` writes no secret into the
file. ``keys hash`` reads the key from standard input, so it never lands in shell history.
"""

from __future__ import annotations

import argparse
import sys


def add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its actions (they read no config)."""
    keys = commands.add_parser("keys", help="make managed keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    new = key_commands.add_parser(
        "new",
        help="make a new random key: the key on stderr, its [[keys]] entry (hash only) on stdout",
        description="Print a new random key on standard error and its [[keys]] entry, which holds only the "
        "key's SHA-256, on standard output, so that `>> config.toml` appends the entry and no secret.",
    )
    new.add_argument("--user", help="the user every request with this key is attributed to")
    new.add_argument("--team", help="the team every request with this key is attributed to")
    new.add_argument("--name", default="", help="a label for the key, recorded on each usage row")
    new.add_argument(
        "--trust-headers",
        action="store_true",
        help="let the attribution headers override the key's user and team (a backend attributing for its users)",
    )
    new.set_defaults(run=_keys_new)
    hash_ = key_commands.add_parser(
        "hash",
        help="read a key from stdin and print its sha256, for [[keys]] sha256",
        description="Read a key from standard input (so it stays out of shell history) and print its SHA-256.",
    )
    hash_.set_defaults(run=_keys_hash)


def _keys_new(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key, new_key

    key = new_key()
    lines = ["[[keys]]", f"name = {_toml_string(args.name)}", f'sha256 = "{hash_key(key)}"']
    if args.user:
        lines.append(f"user = {_toml_string(args.user)}")
    if args.team:
        lines.append(f"team = {_toml_string(args.team)}")
    if args.trust_headers:
        lines.append("trust_headers = true")
    sys.stderr.write(f"key: {key}\n(give it to its user; the entry below holds only its hash)\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        sys.stderr.write("tollgate: no key on standard input: `tollgate keys hash < keyfile` or type it, then Enter\n")
        return 2
    sys.stdout.write(hash_key(key) + "\n")
    return 0


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
