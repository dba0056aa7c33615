"""The local server's /ui/ files: the built bundle and demo page, nothing outside ui/dist."""

from __future__ import annotations

from pathlib import Path

from devtools.gateway import static_ui


def test_serves_the_bundle_and_the_demo_page(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "credit-meter.js").write_text("export {};")
    page = static_ui("GET", "/ui/", tmp_path)
    assert page is not None and page.status == 200 and page.body == b"<!doctype html>"
    assert ("content-type", "text/html; charset=utf-8") in page.headers
    script = static_ui("GET", "/ui/credit-meter.js?v=1", tmp_path)
    assert script is not None and script.body == b"export {};"
    assert ("content-type", "text/javascript; charset=utf-8") in script.headers
    head = static_ui("HEAD", "/ui/credit-meter.js", tmp_path)
    assert head is not None and head.status == 200 and head.body == b""


def test_leaves_the_api_alone_and_nothing_escapes(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    root = tmp_path / "dist"
    assert static_ui("GET", "/v1/wallets/w", root) is None
    assert static_ui("POST", "/ui/index.html", root) is None
    assert static_ui("GET", "/uix", root) is None
    for target in ("/ui/../secret.txt", "/ui/%2e%2e/secret.txt", "/ui/missing.js"):
        answer = static_ui("GET", target, root)
        assert answer is not None and answer.status == 404, target
