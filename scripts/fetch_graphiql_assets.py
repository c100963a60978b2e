"""Fetch GraphiQL's browser assets (the npm packages Strawberry's page names) for offline use.

Uses `npm pack` (npm checks each package tarball against the registry's integrity hash), copies
the files the page loads into api/static/vendor/, and checks each against the Subresource
Integrity hash pinned in Strawberry's page. Idempotent: files already present and correct are
kept. Exits non-zero, saying why, when a file cannot be fetched or does not match.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strawberry.http.ides import get_graphql_ide_html  # noqa: E402

from api.graphiql import CDN_ASSET, VENDOR_DIR  # noqa: E402

TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.S)
INTEGRITY = re.compile(r'integrity="([^"]+)"')


def pinned_assets() -> dict[str, str | None]:
    """package@version/path -> SRI hash (or None when the page pins none)."""
    assets: dict[str, str | None] = {}
    for tag in TAG.findall(get_graphql_ide_html("graphiql")):
        asset = CDN_ASSET.search(tag)
        if asset:
            integrity = INTEGRITY.search(tag)
            assets[asset.group(1)] = integrity.group(1) if integrity else None
    return assets


def sri_ok(path: Path, integrity: str | None) -> bool:
    if not path.is_file():
        return False
    if integrity is None:
        return True
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, path.read_bytes()).digest()
    return base64.b64encode(digest).decode() == expected


def split(asset: str) -> tuple[str, str]:
    """'@scope/name@1.0/dist/x.js' -> ('@scope/name@1.0', 'dist/x.js')"""
    scoped = asset.startswith("@")
    parts = asset.split("/")
    cut = 2 if scoped else 1
    return "/".join(parts[:cut]), "/".join(parts[cut:])


def fetch(spec: str, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to fetch GraphiQL's assets (apt-get install -y npm)")
    out = subprocess.run(  # noqa: S603 - npm from PATH, package specs from Strawberry's page
        [npm, "pack", spec, "--json", "--silent", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    tarball = workdir / json.loads(out.stdout)[0]["filename"]
    target = workdir / spec.replace("/", "__")
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def main() -> None:
    assets = pinned_assets()
    todo = {a: i for a, i in assets.items() if not sri_ok(VENDOR_DIR / a, i)}
    if not todo:
        print(f"GraphiQL assets present and verified ({len(assets)} files)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        unpacked: dict[str, Path] = {}
        for asset, integrity in todo.items():
            spec, path = split(asset)
            if spec not in unpacked:
                unpacked[spec] = fetch(spec, Path(tmp))
            target = VENDOR_DIR / asset
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(unpacked[spec] / path, target)
            if not sri_ok(target, integrity):
                target.unlink()
                sys.exit(f"{asset} does not match the integrity hash Strawberry pins")
    print(f"GraphiQL assets fetched and verified ({len(todo)} files) into {VENDOR_DIR}")


if __name__ == "__main__":
    main()
