"""The OpenAPI 3.1 description of the JSON API (served at ``/openapi.json``, rendered at ``/docs``).

Written by hand, next to the handlers in ``api.py``: the API is small, and a literal
document is easier to review than one generated from annotations. ``tests/test_web_api.py``
checks that every route it lists exists and that the shapes match what the handlers return.
"""

from __future__ import annotations

from typing import Any

from engfeed import __version__
from engfeed.web.params import MAX_LIMIT, MAX_QUERY_CHARS, MAX_SOURCES

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _state_op(op_id: str, summary: str, description: str = "", *, body: bool = False) -> JSON:
    """A reading-state change: same-origin only; a body is JSON (browsers cannot send that
    cross-site without asking first, which is the API's CSRF defence)."""
    op: JSON = {
        "operationId": op_id,
        "summary": summary,
        "description": (
            description + " Requests from another origin are refused (403); a body must be JSON (415)."
        ).strip(),
        "parameters": [_UID],
        "responses": {
            "200": _json(_ref("Article"), "The article with its new state."),
            "403": _REFUSED,
            "404": {"$ref": "#/components/responses/NotFound"},
            **_ERRORS,
        },
    }
    if body:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref("NoteBody")}}}
        op["responses"].update(_BODY_ERRORS)
    return op


_ERRORS: JSON = {
    "400": {"$ref": "#/components/responses/BadRequest"},
}
_REFUSED: JSON = {"$ref": "#/components/responses/Refused"}
#: What any operation that reads a JSON body may also answer.
_BODY_ERRORS: JSON = {"413": _REFUSED, "415": _REFUSED}

_FILTERS: list[JSON] = [
    {
        "name": "source",
        "in": "query",
        "description": (
            f"Only articles of this company/source (repeatable, or comma-separated; at most {MAX_SOURCES})."
        ),
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    {
        "name": "angle",
        "in": "query",
        "description": "Only articles labelled with this useful angle (see /api/angles).",
        "schema": {"type": "string"},
    },
    {
        "name": "since",
        "in": "query",
        "description": "Published on or after this date (YYYY-MM-DD or ISO 8601; naive times are UTC).",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "until",
        "in": "query",
        "description": "Published before this date (exclusive; YYYY-MM-DD or ISO 8601).",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "show",
        "in": "query",
        "description": "Only the reader's `unread` or `saved` articles.",
        "schema": {"type": "string", "enum": ["unread", "saved"]},
    },
    {
        "name": "include_muted",
        "in": "query",
        "description": "`1`: also the articles the reader's mute rules hide (they carry `muted: true`).",
        "schema": {"type": "string", "enum": ["0", "1"], "default": "0"},
    },
]


def _limit(default: int, maximum: int) -> JSON:
    return {
        "name": "limit",
        "in": "query",
        "description": f"How many to return (1-{maximum}; a value outside that range is a 400).",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


_UID: JSON = {
    "name": "uid",
    "in": "path",
    "required": True,
    "description": "The article's stable public id (the `id` field of listings).",
    "schema": {"type": "string"},
}


def openapi_document() -> JSON:
    """The whole document; a fresh dict each call (callers may not mutate a shared one)."""
    nullable_str = {"type": ["string", "null"]}
    nullable_dt = {"type": ["string", "null"], "format": "date-time"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Engineering Feed API",
            "version": __version__,
            "summary": "Recency listings, concept search, related articles and sources.",
            "description": (
                "A read-only JSON API over the same data as the page. Article objects have the shape "
                "of `engfeed list --json`; search hits add `score`, `context` and `why` "
                "(`engfeed search --json`). Dates are ISO 8601 in UTC with a `Z` suffix. Invalid "
                "parameters give a 400 with an `error` object, unknown ids a 404."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/api/articles": {
                "get": {
                    "operationId": "listArticles",
                    "summary": "List articles, newest first",
                    "description": (
                        "Keyset-paginated: pass the `next_cursor` of one page as `cursor` to get the next. "
                        "`total` counts every article matching the filters."
                    ),
                    "parameters": [
                        *_FILTERS,
                        _limit(50, MAX_LIMIT),
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "The `next_cursor` of the previous page.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"200": _json(_ref("ArticlePage"), "One page of articles."), **_ERRORS},
                }
            },
            "/api/articles/{uid}": {
                "get": {
                    "operationId": "getArticle",
                    "summary": "One article with its sanitised content",
                    "parameters": [_UID],
                    "responses": {
                        "200": _json(_ref("ArticleDetail"), "The article."),
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            },
            "/api/articles/{uid}/related": {
                "get": {
                    "operationId": "relatedArticles",
                    "summary": "Articles related in meaning to one article",
                    "parameters": [_UID, _limit(10, 50)],
                    "responses": {
                        "200": _json(_ref("Related"), "Related articles, most related first."),
                        "404": {"$ref": "#/components/responses/NotFound"},
                        **_ERRORS,
                    },
                }
            },
            "/api/articles/{uid}/save": {
                "post": _state_op(
                    "saveArticle",
                    "Put an article on the reading list",
                    "An optional `note` in the body replaces the article's note.",
                    body=True,
                ),
                "delete": _state_op("unsaveArticle", "Take an article off the reading list"),
            },
            "/api/articles/{uid}/note": {
                "put": _state_op(
                    "setNote",
                    "Write, replace or clear the note on an article",
                    'The body must hold `note` (`null`, `""` or only whitespace clears it): a body '
                    "without it is a 400, so a typo never clears a note. A note over 100 KB is a 413; "
                    "text that is not valid Unicode (a lone surrogate) is a 400.",
                    body=True,
                ),
            },
            "/api/articles/{uid}/read": {
                "post": _state_op("markRead", "Mark an article read"),
                "delete": _state_op("markUnread", "Mark an article unread"),
            },
            "/api/articles/{uid}/angles": {
                "get": {
                    "operationId": "explainAngles",
                    "summary": "Why an article has, or lacks, each useful angle",
                    "description": (
                        "For every angle: shown or not, the reason, the decision score and threshold, "
                        "the meaning and evidence figures, what the reader's verdicts on similar "
                        "articles added, the evidence terms and the passage holding the strongest."
                    ),
                    "parameters": [_UID],
                    "responses": {
                        "200": _json(_ref("AngleExplanations"), "One entry per angle, shown ones first."),
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                },
                "post": {
                    "operationId": "angleFeedback",
                    "summary": "Tell the labeller an angle is right or wrong for an article",
                    "description": (
                        '`yes` adds the angle, `no` removes it ("not this angle"), `clear` forgets the '
                        "verdict. Final for this article; an example for similar ones, which are labelled "
                        "again at once (`relabelled`, of which `changed` now show other angles). "
                        "Requests from another origin are refused (403); the body must be JSON (415)."
                    ),
                    "parameters": [_UID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AngleFeedbackBody")}},
                    },
                    "responses": {
                        "200": _json(_ref("AngleFeedbackResult"), "The article as now labelled."),
                        "403": _REFUSED,
                        "404": {"$ref": "#/components/responses/NotFound"},
                        **_ERRORS,
                        **_BODY_ERRORS,
                    },
                },
            },
            "/api/search": {
                "get": {
                    "operationId": "search",
                    "summary": "Concept search",
                    "description": (
                        "Hybrid ranking (BM25 keywords plus dense meaning, with a recency nudge). Each hit "
                        "carries the passage that matched (`context`, HTML-escaped text with `<mark>`) "
                        "and the ranking evidence (`why`)."
                    ),
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "description": f"The concept query (at most {MAX_QUERY_CHARS} characters).",
                            "schema": {"type": "string", "minLength": 1},
                        },
                        *_FILTERS,
                        _limit(20, 100),
                    ],
                    "responses": {"200": _json(_ref("SearchResult"), "The hits, best first."), **_ERRORS},
                }
            },
            "/api/sources": {
                "get": {
                    "operationId": "listSources",
                    "summary": "Sources with their fetch health",
                    "responses": {"200": _json(_ref("SourceList"), "Every source, by name.")},
                }
            },
            "/api/angles": {
                "get": {
                    "operationId": "listAngles",
                    "summary": "Useful angles with descriptions and article counts",
                    "responses": {"200": _json(_ref("AngleList"), "The angles in use.")},
                }
            },
            "/feed.atom": {
                "get": {
                    "operationId": "atomFeed",
                    "summary": "Any view as an Atom 1.0 feed",
                    "description": "With `q`: the search results; otherwise the newest articles.",
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                        *_FILTERS,
                    ],
                    "responses": {
                        "200": {
                            "description": "Atom 1.0",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/feed.json": {
                "get": {
                    "operationId": "jsonFeed",
                    "summary": "Any view as a JSON Feed 1.1",
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                        *_FILTERS,
                    ],
                    "responses": {
                        "200": {
                            "description": "JSON Feed 1.1",
                            "content": {"application/feed+json": {"schema": {"type": "object"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/api/rules": {
                "get": {
                    "operationId": "listMuteRules",
                    "summary": "Mute rules, with how many articles each hides",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["rules"],
                                "properties": {"rules": {"type": "array", "items": _ref("MuteRule")}},
                            },
                            "The rules, oldest first.",
                        )
                    },
                },
                "post": {
                    "operationId": "addMuteRule",
                    "summary": "Preview or add a mute rule",
                    "description": (
                        "With `preview: true`, says how many stored articles the rule would hide and "
                        "shows a few; otherwise saves it (201), and it applies at once. An unknown "
                        "source or angle, a duplicate, or a regex that risks catastrophic backtracking "
                        "is a 400. Requests from another origin are refused (403); the body must be "
                        "JSON (415)."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("MuteRuleBody")}},
                    },
                    "responses": {
                        "200": _json(_ref("MutePreview"), "The preview (nothing saved)."),
                        "201": _json(_ref("MutePreview"), "The rule, saved, with what it hides."),
                        "403": _REFUSED,
                        **_ERRORS,
                        **_BODY_ERRORS,
                    },
                },
            },
            "/api/rules/{id}": {
                "delete": {
                    "operationId": "removeMuteRule",
                    "summary": "Remove a mute rule (what it hid shows again)",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": _json(_ref("MuteRule"), "The rule removed."),
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            },
            "/api/digest": {
                "get": {
                    "operationId": "digest",
                    "summary": "The digest: the most useful new articles of a period, by angle",
                    "parameters": [
                        {
                            "name": "days",
                            "in": "query",
                            "description": "The period: the last N days (1-90).",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 90, "default": 7},
                        }
                    ],
                    "responses": {"200": _json(_ref("Digest"), "The digest."), **_ERRORS},
                }
            },
            "/digest.atom": {
                "get": {
                    "operationId": "digestFeed",
                    "summary": "The weekly digest as an Atom feed (one entry per ISO week)",
                    "responses": {
                        "200": {
                            "description": "Atom 1.0",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Health for load balancers: the database and the background work",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Health"}, "The database answers."),
                        "503": _json(
                            {"$ref": "#/components/schemas/Health"}, "The database does not answer."
                        ),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"enum": ["ok", "error"]},
                        "database": {
                            "type": "object",
                            "properties": {
                                "ok": {"type": "boolean"},
                                "backend": {"enum": ["sqlite", "postgresql"]},
                                "schema": {"type": "integer", "description": "migrations applied"},
                                "latest": {"type": "integer", "description": "migrations this engfeed knows"},
                                "error": {"type": "string"},
                            },
                        },
                        "background": {
                            "type": "object",
                            "description": (
                                "kind 'queue': jobs per status (todo, doing, failed) and live workers;"
                                " kind 'in-process': serve's own refresh schedule"
                            ),
                            "properties": {
                                "kind": {"enum": ["queue", "in-process"]},
                                "todo": {"type": "integer"},
                                "doing": {"type": "integer"},
                                "failed": {"type": "integer"},
                                "workers": {"type": "integer"},
                                "enabled": {"type": "boolean"},
                                "running": {"type": "boolean"},
                                "last_run": {"type": ["string", "null"], "format": "date-time"},
                                "last_ok": {"type": ["boolean", "null"]},
                            },
                        },
                    },
                },
                "AngleMatch": {
                    "type": "object",
                    "required": ["name", "terms"],
                    "properties": {
                        "name": {"type": "string", "description": "The angle's name."},
                        "terms": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Evidence terms found in the article.",
                        },
                    },
                },
                "Article": {
                    "type": "object",
                    "required": ["id", "url", "title", "source", "published", "excerpt", "angles"],
                    "properties": {
                        "id": {"type": "string", "description": "Stable public id."},
                        "url": {"type": "string", "description": "The original article."},
                        "title": {"type": "string"},
                        "source": {"type": "string", "description": "The company/blog."},
                        "published": {"type": "string", "format": "date-time"},
                        "updated": nullable_dt,
                        "date_estimated": {
                            "type": "boolean",
                            "description": "The feed gave no date; first-seen time used.",
                        },
                        "author": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "excerpt": {"type": "string", "description": "Clean plain-text excerpt."},
                        "angles": {"type": "array", "items": _ref("AngleMatch")},
                        "saved": {"type": "boolean", "description": "On the reader's reading list."},
                        "read": {"type": "boolean", "description": "Marked read by the reader."},
                        "note": {
                            "type": ["string", "null"],
                            "description": "The reader's Markdown note; null when none.",
                        },
                        "text_source": {
                            "type": "string",
                            "enum": ["feed", "page"],
                            "description": "Where the article's text comes from: the feed, or the"
                            " original page (the feed carried only a teaser).",
                        },
                        "muted": {
                            "type": "boolean",
                            "description": "Hidden by the reader's mute rules (listed only with"
                            " include_muted=1). Saved articles are never muted.",
                        },
                    },
                },
                "AngleFeedbackBody": {
                    "type": "object",
                    "required": ["angle", "verdict"],
                    "properties": {
                        "angle": {"type": "string", "description": "An angle's name (any case)."},
                        "verdict": {"type": "string", "enum": ["yes", "no", "clear"]},
                    },
                },
                "AngleFeedbackResult": {
                    "allOf": [
                        _ref("Article"),
                        {
                            "type": "object",
                            "properties": {
                                "relabelled": {
                                    "type": "integer",
                                    "description": "Similar articles labelled again.",
                                },
                                "changed": {"type": "integer", "description": "Of those, how many changed."},
                            },
                        },
                    ]
                },
                "AngleExplanations": {
                    "type": "object",
                    "required": ["id", "angles"],
                    "properties": {
                        "id": {"type": "string"},
                        "angles": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "angle": {"type": "string"},
                                    "chosen": {"type": "boolean"},
                                    "rule": {
                                        "type": "string",
                                        "enum": ["learned", "prototype", "evidence"],
                                        "description": "learned: a trained head (score and threshold"
                                        " are probabilities); prototype: the description and cue-term"
                                        " rule; evidence: cue terms only (no embeddings)",
                                    },
                                    "reason": {"type": "string"},
                                    "score": {"type": ["number", "null"]},
                                    "threshold": {"type": "number"},
                                    "meaning": {"type": ["number", "null"]},
                                    "evidence": {"type": "number"},
                                    "feedback_nudge": {"type": "number"},
                                    "verdict": {"type": ["string", "null"], "enum": ["yes", "no", None]},
                                    "terms": {"type": "array", "items": {"type": "string"}},
                                    "passage": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "MuteRule": {
                    "type": "object",
                    "required": ["id", "kind", "value", "created", "hidden"],
                    "properties": {
                        "id": {"type": ["integer", "null"], "description": "null in a preview."},
                        "kind": {"type": "string", "enum": ["source", "term", "regex", "angle"]},
                        "value": {"type": "string"},
                        "created": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "null in a preview.",
                        },
                        "hidden": {"type": "integer", "description": "Stored articles it hides now."},
                    },
                },
                "MuteRuleBody": {
                    "type": "object",
                    "required": ["kind", "value"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["source", "term", "regex", "angle"]},
                        "value": {
                            "type": "string",
                            "description": "A source or angle name, a word or phrase (whole words, any"
                            " case), or a regular expression over title and excerpt (case-insensitive).",
                        },
                        "preview": {
                            "type": "boolean",
                            "default": False,
                            "description": "true: only say what it would hide; save nothing.",
                        },
                    },
                },
                "MutePreview": {
                    "type": "object",
                    "required": ["rule", "hidden", "total", "examples", "saved"],
                    "properties": {
                        "rule": _ref("MuteRule"),
                        "hidden": {
                            "type": "integer",
                            "description": "Stored articles it hides (would hide).",
                        },
                        "total": {"type": "integer", "description": "Stored articles in all."},
                        "examples": {
                            "type": "array",
                            "description": "The newest few it hides.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "title": {"type": "string"},
                                    "source": {"type": "string"},
                                    "published": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                        "saved": {"type": "boolean", "description": "false for a preview."},
                    },
                },
                "Digest": {
                    "type": "object",
                    "required": ["title", "start", "end", "week", "total", "shown", "more", "groups"],
                    "properties": {
                        "title": {"type": "string"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "week": {"type": "string", "description": "ISO week of the end, e.g. 2026-W49."},
                        "total": {"type": "integer", "description": "New articles no rule hides."},
                        "shown": {"type": "integer", "description": "Entries in the digest (at most 30)."},
                        "more": {"type": "integer", "description": "New articles left for the page."},
                        "groups": {
                            "type": "array",
                            "description": "By angle (the reader's order), then 'Also new'.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "title": {"type": "string"},
                                    "angle": nullable_str,
                                    "entries": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "id": {"type": "string"},
                                                "title": {"type": "string"},
                                                "url": {"type": "string"},
                                                "source": {"type": "string"},
                                                "published": {"type": "string", "format": "date-time"},
                                                "angle": {"oneOf": [_ref("AngleMatch"), {"type": "null"}]},
                                                "blurb": {"type": "string"},
                                                "saved": {"type": "boolean"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "Summary": {
                    "type": "object",
                    "required": ["overview", "sections", "takeaways", "method", "text_source", "words"],
                    "properties": {
                        "overview": {"type": "string", "description": "2-3 sentences."},
                        "sections": {
                            "type": "array",
                            "description": "One per heading of the article (when it has two or more).",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "heading": {"type": "string"},
                                    "points": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                        "takeaways": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "3-6 central, specific statements.",
                        },
                        "method": {
                            "type": "string",
                            "description": "'extractive' (sentences of the article) or 'llm:<model>'.",
                        },
                        "text_source": {"type": "string", "enum": ["feed", "page"]},
                        "words": {"type": "integer", "description": "Words of the text summarised."},
                    },
                },
                "NoteBody": {
                    "type": "object",
                    "properties": {
                        "note": {
                            "type": ["string", "null"],
                            "description": "Markdown, at most 100 KB; null, empty or only whitespace"
                            " clears the note.",
                        }
                    },
                },
                "ArticleDetail": {
                    "allOf": [
                        _ref("Article"),
                        {
                            "type": "object",
                            "properties": {
                                "content_html": {
                                    "type": "string",
                                    "description": "Sanitised HTML body: the text extracted from the"
                                    " original page when text_source is 'page', else the feed's content,"
                                    " else its summary.",
                                },
                                "page_url": {"type": "string", "description": "This article's page here."},
                                "summary": {
                                    "oneOf": [_ref("Summary"), {"type": "null"}],
                                    "description": "The deep summary; null for short articles.",
                                },
                                "summary_reason": {
                                    "type": ["string", "null"],
                                    "description": "Why there is no summary (null when there is one).",
                                },
                            },
                        },
                    ]
                },
                "ArticlePage": {
                    "type": "object",
                    "required": ["articles", "total", "next_cursor"],
                    "properties": {
                        "articles": {"type": "array", "items": _ref("Article")},
                        "total": {"type": "integer", "description": "Articles matching the filters."},
                        "next_cursor": {
                            **nullable_str,
                            "description": "Pass as `cursor` for the next page; null on the last.",
                        },
                    },
                },
                "SearchHit": {
                    "allOf": [
                        _ref("Article"),
                        {
                            "type": "object",
                            "required": ["score", "context", "why"],
                            "properties": {
                                "score": {"type": "number"},
                                "context": {
                                    "type": "string",
                                    "description": "Matched passage: escaped text with <mark>.",
                                },
                                "why": {
                                    "type": "object",
                                    "description": "Ranking evidence: BM25 rank, dense rank, recency, ...",
                                    "additionalProperties": {"type": ["number", "integer", "null"]},
                                },
                            },
                        },
                    ]
                },
                "SearchResult": {
                    "type": "object",
                    "required": ["query", "hits", "count"],
                    "properties": {
                        "query": {"type": "string"},
                        "hits": {"type": "array", "items": _ref("SearchHit")},
                        "count": {"type": "integer"},
                    },
                },
                "Related": {
                    "type": "object",
                    "required": ["id", "related"],
                    "properties": {
                        "id": {"type": "string"},
                        "related": {"type": "array", "items": _ref("SearchHit")},
                    },
                },
                "Source": {
                    "type": "object",
                    "required": ["name", "url", "health"],
                    "properties": {
                        "name": {"type": "string"},
                        "url": {"type": "string", "description": "The feed URL."},
                        "site_url": {"type": "string"},
                        "articles": {"type": "integer"},
                        "last_attempt": nullable_dt,
                        "last_success": nullable_dt,
                        "http_status": {"type": ["integer", "null"]},
                        "error": {**nullable_str, "description": "The last fetch's error, if it failed."},
                        "failures": {"type": "integer", "description": "Consecutive failed fetches."},
                        "next_due": {**nullable_dt, "description": "Next scheduled attempt."},
                        "health": {"enum": ["ok", "failing", "never fetched", "pending"]},
                        "hint": {**nullable_str, "description": "Plain-language explanation of a failure."},
                    },
                },
                "SourceList": {
                    "type": "object",
                    "required": ["sources"],
                    "properties": {"sources": {"type": "array", "items": _ref("Source")}},
                },
                "Angle": {
                    "type": "object",
                    "required": ["name", "description", "articles"],
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "terms": {"type": "array", "items": {"type": "string"}},
                        "articles": {"type": "integer"},
                    },
                },
                "AngleList": {
                    "type": "object",
                    "required": ["angles"],
                    "properties": {"angles": {"type": "array", "items": _ref("Angle")}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "message"],
                            "properties": {
                                "status": {"type": "integer"},
                                "message": {"type": "string"},
                                "param": {**nullable_str, "description": "The offending parameter."},
                            },
                        }
                    },
                },
            },
            "responses": {
                "BadRequest": _json(_ref("Error"), "A parameter is invalid."),
                "Refused": _json(
                    _ref("Error"),
                    "Refused: from another origin (403), a body too large (413) or not JSON (415).",
                ),
                "NotFound": _json(_ref("Error"), "No such article (or rule)."),
            },
        },
    }
