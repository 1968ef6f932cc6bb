"""The API document: /openapi.json, a readable /docs page that needs no network, and /problems/<slug>."""

from __future__ import annotations

import functools
import html
import json

from aiohttp import web

from ledger import errors
from ledger.errors import NotFound
from ledger.web.openapi import openapi_document
from ledger.web.render import json_response

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2733}
h1{margin-bottom:0}code,pre{font:13px ui-monospace,monospace;background:#f3f5f7;border-radius:4px}
pre{padding:.6rem;overflow:auto}section{border-top:1px solid #dde3e8;padding:.4rem 0}
.m{display:inline-block;min-width:4rem;font-weight:700}.post{color:#a15c00}.get{color:#0b6e4f}
table{border-collapse:collapse}td,th{border:1px solid #dde3e8;padding:.2rem .5rem;text-align:left}
"""


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi_document())


def _operation(path: str, method: str, operation: dict[str, object]) -> str:
    parts = [f'<section><h3><span class="m {method}">{method.upper()}</span><code>{html.escape(path)}</code></h3>',
             f"<p>{html.escape(str(operation.get('summary', '')))}</p>"]  # fmt: skip
    parameters = operation.get("parameters") or []
    if isinstance(parameters, list) and parameters:
        rows = "".join(
            f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
            f"<td>{'required' if p.get('required') else ''}</td><td>{html.escape(p.get('description', ''))}</td></tr>"
            for p in parameters
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th></th><th></th></tr>{rows}</table>")
    body = operation.get("requestBody")
    if isinstance(body, dict):
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        parts.append(f"<p>Body: <a href='#schema-{ref}'><code>{ref}</code></a></p>")
    responses = operation.get("responses", {})
    if isinstance(responses, dict):
        items = "".join(f"<li><b>{s}</b> {html.escape(r['description'])}</li>" for s, r in responses.items())
        parts.append(f"<ul>{items}</ul>")
    return "".join(parts) + "</section>"


@functools.cache
def _docs_html() -> str:
    document = openapi_document()
    operations = "".join(
        _operation(path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    )
    catalogue = "".join(
        f"<tr><td>{kind.status}</td><td><a href='/problems/{kind.slug}'><code>{kind.slug}</code></a></td>"
        f"<td>{html.escape(kind.title)}</td></tr>"
        for kind in errors.all_problem_classes()
    )
    models = "".join(
        f"<section id='schema-{name}'><h3>{name}</h3><pre>{html.escape(json.dumps(schema, indent=2))}</pre></section>"
        for name, schema in document["components"]["schemas"].items()
    )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>Ledger API</title><style>{_STYLE}</style>"
        f"<h1>Ledger API</h1><p>{html.escape(document['info']['description'])} "
        f"Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>"
        f"<h2>Operations</h2>{operations}<h2>Problems</h2><table><tr><th>status</th><th>type</th><th>title</th></tr>"
        f"{catalogue}</table><h2>Schemas</h2>{models}</html>"
    )


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_docs_html(), content_type="text/html")


async def problem_page(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    for kind in errors.all_problem_classes():
        if kind.slug == slug:
            text = (
                f"<!doctype html><html lang=en><meta charset=utf-8><title>{kind.slug}</title><style>{_STYLE}</style>"
                f"<h1>{kind.status} {html.escape(kind.title)}</h1><p><code>/problems/{kind.slug}</code></p>"
                f"<p>{html.escape((kind.__doc__ or '').strip())}</p><p><a href='/docs'>API document</a></p></html>"
            )
            return web.Response(text=text, content_type="text/html")
    raise NotFound(f"no problem type {slug!r}")
