"""The preview page in a real browser (Debian's headless chromium); the screenshot is kept in test-artifacts/."""

from __future__ import annotations

import html
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from digests.formatting.blurb import format_digest, format_photo, format_single
from digests.formatting.preview import render_preview_page
from tests.test_blurb import Item

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain one-colour PNG, so the page has a photo to show without any network."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving photo.png; yields its base URL."""
    (tmp_path / "photo.png").write_bytes(png(480, 240, (81, 125, 162)))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_preview_page_renders_in_chromium(tmp_path, image_server):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    photo_item = Item(title="开源数据库发布 3.5 版本", image=f"{image_server}/photo.png", id=1)
    items = [
        Item(title="某浏览器默认开启隐私保护 <beta> & more", url="https://browser.example.com/post?id=2&x=1",
             source="Browser Blog", commentary="老王点评：早该如此。", tags=["浏览器", "隐私"], id=2),
        Item(title="新的 Linux 内核发布", url="https://kernel.example.org/6.8", source="", commentary="",
             summary="新内核带来了调度器改进。还修复了大量驱动问题。", id=3),
    ]
    messages = [format_photo(photo_item), format_single(items[0]), *format_digest(items, number=948)]
    page = tmp_path / "preview.html"
    page.write_text(render_preview_page(messages, "硬核观察 预览"), encoding="utf-8")

    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for title in ("开源数据库发布 3.5 版本", html.escape("某浏览器默认开启隐私保护 <beta> & more"), "新的 Linux 内核发布",
                  "<strong>硬核观察 #948</strong>"):
        assert title in dom.stdout
    assert 'href="https://browser.example.com/post?id=2&amp;x=1"' in dom.stdout
    assert 'href="https://kernel.example.org/6.8"' in dom.stdout
    assert '<blockquote class="quote">老王点评：早该如此。</blockquote>' in dom.stdout
    assert f'<img src="{image_server}/photo.png"' in dom.stdout
    assert f">{messages[0].length} / 1024<" in dom.stdout

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "preview.png"
    screenshot.unlink(missing_ok=True)
    shot = chromium(tmp_path, "--virtual-time-budget=5000", "--window-size=600,1500",
                    f"--screenshot={screenshot}", page.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and struct.unpack(">II", data[16:24]) == (600, 1500)
