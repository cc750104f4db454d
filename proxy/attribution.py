"""Who a request is for: user, team, thread, agent and tags, from its headers.

Pure: takes raw ASGI headers and returns an ``Attribution``. The rules:

- the attribution headers (names configurable) give user, team, thread, agent
  and ``<tag prefix><name>`` tags;
- the body's ``user`` field is the fallback user;
- ``base`` (the in-process meter's scope, see ``proxy.inprocess``) fills what the
  headers leave out, before the body's ``user`` field;
- a managed key bound to a user or team wins over the headers (no spoofing),
  unless the key has ``trust_headers = true``;
- a user listed in ``[teams.<id>] members`` belongs to that team, whatever the
  team header says, unless a key binds the request to a team.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from proxy.config import AttributionConfig, KeyConfig, TeamConfig
from proxy.errors import BadRequest
from proxy.recording.records import MAX_LABEL_CHARS, label_problem

RawHeaders = Iterable[tuple[bytes, bytes]]

# Tags are stored on every row: a client must not be able to make rows of any size.
MAX_TAGS = 32
MAX_TAG_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class Attribution:
    user: str | None = None
    team: str | None = None
    thread: str | None = None
    agent: str | None = None
    key: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class AttributionReader:
    """Reads attribution from headers in one pass; built once from the config."""

    def __init__(self, config: AttributionConfig, teams: Mapping[str, TeamConfig] | None = None) -> None:
        self._team_of = {user: team for team, cfg in (teams or {}).items() for user in cfg.members}
        self.team_of: Mapping[str, str] = self._team_of
        """Each ``[teams]`` member's team."""
        self._fields = {
            config.user_header.lower().encode(): "user",
            config.team_header.lower().encode(): "team",
            config.thread_header.lower().encode(): "thread",
            config.agent_header.lower().encode(): "agent",
        }
        self._header_of = {
            "user": config.user_header,
            "team": config.team_header,
            "thread": config.thread_header,
            "agent": config.agent_header,
        }
        self._tag_prefix = config.tag_prefix.lower().encode()
        self._tag_header = config.tag_prefix
        self.strip = config.strip_headers

    def is_attribution_header(self, name: bytes) -> bool:
        """Whether ``name`` (lower-case) is an attribution or tag header."""
        return name in self._fields or name.startswith(self._tag_prefix)

    def read(
        self,
        headers: RawHeaders,
        body_user: str | None = None,
        key: KeyConfig | None = None,
        base: Attribution | None = None,
    ) -> Attribution:
        found: dict[str, str] = {}
        tags: dict[str, str] = dict(base.tags) if base is not None and base.tags else {}
        prefix = self._tag_prefix
        for name, value in headers:
            slot = self._fields.get(name)
            if slot is not None:
                text = value.decode("latin-1")
                problem = label_problem(text)
                if problem is not None:
                    raise BadRequest(f"The {self._header_of[slot]} header {problem}.")
                found[slot] = text
            elif name.startswith(prefix) and len(name) > len(prefix):
                tag, text = name[len(prefix) :].decode("latin-1"), value.decode("latin-1")
                if len(tag) > MAX_TAG_NAME_CHARS or len(text) > MAX_LABEL_CHARS or "\x00" in text:
                    raise BadRequest(
                        f"The tag header {self._tag_header}{tag[:40]} is too long or holds a NUL: a tag name is at "
                        f"most {MAX_TAG_NAME_CHARS} characters and its value at most {MAX_LABEL_CHARS}."
                    )
                tags[tag] = text
                if len(tags) > MAX_TAGS:
                    raise BadRequest(f"A request carries at most {MAX_TAGS} {self._tag_header}<name> tag headers.")
        if base is not None:
            for slot in ("user", "team", "thread", "agent"):
                value = getattr(base, slot)
                if value is not None and not found.get(slot):
                    found[slot] = value
        user = found.get("user") or body_user
        problem = label_problem(user) if user is not None and not found.get("user") else None
        if problem is not None:
            raise BadRequest(f"The body's user field {problem}.")
        team = found.get("team")
        if key is not None and not key.trust_headers:
            # A key bound to a user is the user: headers cannot move its spend elsewhere.
            if key.user is not None:
                user = key.user
            if key.team is not None or key.user is not None:
                team = key.team
        elif key is not None:
            user = user or key.user
            team = team or key.team
        if user is not None and (key is None or key.team is None or key.trust_headers):
            team = self._team_of.get(user, team)
        return Attribution(
            user=user,
            team=team,
            thread=found.get("thread"),
            agent=found.get("agent"),
            key=key.name if key is not None else None,
            tags=tags,
        )
