"""``tollgate keys new|hash``: make managed keys and the ``[[keys]]`` entries that admit them."""

from __future__ import annotations

import argparse
import sys


def add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its actions (they read no config)."""
    keys = commands.add_parser("keys", help="make managed keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    new = key_commands.add_parser("new", help="print a new random key and its [[keys]] entry")
    new.add_argument("--user")
    new.add_argument("--team")
    new.add_argument("--name", default="")
    new.set_defaults(run=_keys_new)
    hash_ = key_commands.add_parser("hash", help="print the sha256 of a key, for [[keys]] sha256")
    hash_.add_argument("key")
    hash_.set_defaults(run=_keys_hash)


def _keys_new(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key, new_key

    key = new_key()
    lines = [f"# key: {key}", "[[keys]]", f'name = "{args.name}"', f'sha256 = "{hash_key(key)}"']
    if args.user:
        lines.append(f'user = "{args.user}"')
    if args.team:
        lines.append(f'team = "{args.team}"')
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    from proxy.keys import hash_key

    sys.stdout.write(hash_key(args.key) + "\n")
    return 0
