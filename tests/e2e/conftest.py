"""Browser suite plumbing: a live control plane (uvicorn on a loopback port, SQLite with real commits), Debian's
Chromium driven by Playwright, screenshots at desktop and phone widths, and an accessibility check (every input
labelled, text contrast per WCAG 2.1 AA computed from the rendered colours)."""

from __future__ import annotations

import asyncio
import base64
import email
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher

from keystile.app import create_app
from keystile.services import admin_tokens, installation
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store import migrate
from tests.conftest import missing_service
from tests.database import TEST_KEY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WIDTHS = {"desktop": (1280, 800), "phone": (360, 740)}


@dataclass
class LivePortal:
    url: str
    runtime: Runtime
    admin_token: str
    mail_dir: Path
    data_dir: Path


@pytest.fixture(scope="module")
async def live_portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LivePortal]:
    """The control plane served by uvicorn on 127.0.0.1:<free port>, on its own migrated SQLite database."""
    data_dir = tmp_path_factory.mktemp("portal")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'keystile.db'}",
        secret_key=base64.b64encode(TEST_KEY).decode(),
        public_url=url,
        mail_outbox=data_dir / "mail",
    )
    rt = Runtime.build(settings)
    rt.extras["password_hasher"] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    await migrate.upgrade(rt.engine)
    await installation.ensure(rt)
    _, token = await admin_tokens.create(rt, "browser")
    app = create_app(settings, runtime=rt)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the control plane did not start"
    try:
        yield LivePortal(url, rt, token, data_dir / "mail", data_dir)
    finally:
        server.should_exit = True
        await task
        sock.close()
        await rt.close()


def chromium_path() -> str | None:
    """Debian's Chromium (`/usr/bin/chromium`), else any `chromium` on PATH."""
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    path = chromium_path()
    if path is None:
        missing_service("Debian's chromium is not installed (make browser-deps installs it)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
async def chromium(chromium_executable: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(chromium: Any, live_portal: LivePortal) -> AsyncIterator[Any]:
    context = await chromium.new_context(
        base_url=live_portal.url, viewport={"width": 1280, "height": 800}, service_workers="block"
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_portal.url)
    tab = await context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        await context.close()


# Runs in the page: every visible form control has a label; every visible text meets WCAG 2.1 AA contrast
# (4.5:1, or 3:1 for large text) against its composited background.
A11Y_CHECK = """
() => {
  const problems = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 1 && r.height > 1 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))
      || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!labelled) problems.push('no label: ' + el.outerHTML.slice(0, 160));
  }
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let color = {r: 255, g: 255, b: 255, a: 1};
    for (const e of chain) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) color = over(c, color);
    }
    return color;
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim()) continue;
    seen.add(el);
    if (['SCRIPT', 'STYLE', 'OPTION', 'NOSCRIPT'].includes(el.tagName) || !visible(el)) continue;
    if (el.closest('.skip')) continue;  // off-screen until focused
    const s = getComputedStyle(el);
    const bg = background(el);
    const fg0 = parse(s.color);
    if (!fg0) continue;
    const fg = over(fg0, bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (ratio < need) {
      problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': "' + node.textContent.trim().slice(0, 40)
        + '" (' + s.color + ' on rgb(' + [bg.r, bg.g, bg.b].map(Math.round).join(',') + '))');
    }
  }
  return problems;
}
"""


WIDE_ELEMENTS = """
() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((el) => !(el.parentElement && el.parentElement.closest('.table-wrap')))
  .slice(0, 4).map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))
"""


async def check_page(page: Any, name: str) -> None:
    """Screenshot the page at desktop and phone widths and fail on accessibility problems or sideways scrolling."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for label, (width, height) in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_load_state("load")
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        found = await page.evaluate(A11Y_CHECK)
        problems.extend(f"[{label}] {p}" for p in found)
        overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            culprits = await page.evaluate(WIDE_ELEMENTS)
            problems.append(f"[{label}] the page scrolls sideways by {overflow}px: {culprits}")
    await page.set_viewport_size({"width": 1280, "height": 800})
    assert not problems, f"{name}: " + "\n".join(problems)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def admin_sign_in(page: Any, live: LivePortal) -> None:
    await page.goto("/admin/login")
    await page.get_by_label("Admin token").fill(live.admin_token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/admin/")


async def developer_sign_in(page: Any, email: str, password: str) -> None:
    """Sign in on the portal's sign-in page and land on My Apps."""
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/apps")


def last_mail_link(folder: Path, path: str) -> str:
    mails = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime)
    assert mails, "no mail was written"
    body = email.message_from_bytes(mails[-1].read_bytes()).get_payload(decode=True).decode()
    match = re.search(rf"(http://\S+{path}\?token=[0-9a-f-]+)", body)
    assert match, body
    return match.group(1)
