"""GraphiQL served with its scripts and styles from this app, so it works with no internet.

Strawberry's page loads pinned versions of its assets from a public CDN, each with a
Subresource Integrity hash. `scripts/fetch_graphiql_assets.py` fetches the same npm packages
at set-up and checks them against those hashes; here the page points at the local copies and
keeps the hashes, so the browser verifies them too.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http.ides import get_graphql_ide_html

from api.sharing import DirectSends

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
ASSETS_PATH = "/graphiql-assets"
# A CDN address of an npm package file: https://HOST/[@scope/]name@version/path
CDN_ASSET = re.compile(r'https://[^/"]+/((?:@[\w.-]+/)?[\w.-]+@[\w.-]+/[^"]+)')


@cache
def _cdn_html() -> str:
    return get_graphql_ide_html("graphiql")


@cache
def offline_ide_html() -> str:
    return CDN_ASSET.sub(lambda m: f"{ASSETS_PATH}/{m.group(1)}", _cdn_html())


def missing_assets() -> list[str]:
    """The `package@version/path` of each asset the IDE page loads that is not installed."""
    return [a for a in CDN_ASSET.findall(_cdn_html()) if not (VENDOR_DIR / a).is_file()]


class OfflineGraphQLRouter(GraphQLRouter):
    graphql_transport_ws_handler_class = DirectSends

    @property
    def graphql_ide_html(self) -> str:
        return offline_ide_html()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        if missing_assets():
            return HTMLResponse(
                "<h1>GraphiQL is not installed</h1><p>Run <code>python "
                "scripts/fetch_graphiql_assets.py</code> (needs npm) and reload.</p>",
                503,
            )
        return await super().render_graphql_ide(request)
