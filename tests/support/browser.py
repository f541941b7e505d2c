"""Debian's Chromium under Playwright, as a cheap phone, watched for what must never happen.

The browser is the machine's `chromium` (scripts/install-browser.sh installs it; Playwright's
own download is never used). Every page runs with the site's real CSP (never `bypass_csp`),
and a :class:`Watch` records, for the whole context: every request URL, console errors,
uncaught exceptions and CSP violations of the page AND of its workers (a worker's console
reaches Playwright, but its security messages only reach a DevTools session attached to it,
so one is attached to every worker the page starts).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    ConsoleMessage,
    Page,
    Response,
    sync_playwright,
)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"

# A low-end Android phone: 360x740 CSS pixels at 2x, touch, mobile layout.
PHONE: dict[str, Any] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
# A fake camera and microphone that need no permission prompt, for the record button.
FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

# Runs in every document before its own scripts; DevTools injects it, so the CSP does not
# apply to it. It only reports: the page's behaviour is unchanged.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__hotlineCspViolation(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "Chromium is not installed, and the browser tests need it: run "
            "scripts/install-browser.sh (scripts/install.sh runs it on a fresh machine)"
        )
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium with a fake microphone; closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=FAKE_MEDIA
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What one browser context did: requests, errors, CSP violations."""

    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, URL)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)  # "status URL", 4xx and 5xx

    def off_origin(self) -> list[str]:
        """Request URLs that are not the origin's (a blob: of the origin stays on the device)."""
        return [url for _, url in self.requests if origin_of(url) != self.origin]

    def posts_to(self, path: str) -> list[str]:
        """URLs of the POST requests to `path` (a prefix) on the origin."""
        prefix = f"{self.origin}{path}"
        return [url for method, url in self.requests if method == "POST" and url.startswith(prefix)]

    def assert_clean(self) -> None:
        """No request left the origin, nothing failed, the CSP blocked nothing."""
        assert not self.off_origin(), f"requests left {self.origin}: {self.off_origin()}"
        assert not self.csp_violations, f"CSP violations: {self.csp_violations}"
        assert not self.page_errors, f"uncaught errors: {self.page_errors}"
        assert not self.console_errors, (
            f"console errors: {self.console_errors}; failed responses: {self.failed_responses}"
        )

    def _on_console(self, message: ConsoleMessage) -> None:
        # Chromium reports CSP blocks as console errors, also with JavaScript disabled.
        if message.type != "error":
            return
        text = f"{message.text} (at {message.location.get('url') or 'unknown'})"
        if "Content Security Policy" in message.text:
            self.csp_violations.append(text)
        else:
            self.console_errors.append(text)

    def _on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed_responses.append(f"{response.status} {response.url}")

    def _on_worker_log(self, event: dict[str, Any]) -> None:
        """A DevTools message from a worker: keep its errors (CSP reports are among them)."""
        message = json.loads(event["message"])
        if message.get("method") != "Log.entryAdded":
            return
        entry = message["params"]["entry"]
        if entry["level"] != "error":
            return
        text = f"worker: {entry['text']}"
        if entry["source"] == "security" or "Content Security Policy" in entry["text"]:
            self.csp_violations.append(text)
        else:
            self.console_errors.append(text)


def origin_of(url: str) -> str:
    if url.startswith("blob:"):
        url = url.removeprefix("blob:")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@contextmanager
def phone(
    browser: Browser, origin: str, *, locale: str, javascript: bool = True
) -> Iterator[tuple[Page, Watch]]:
    """A fresh phone context (no state from any other test) and its page, watched."""
    context = browser.new_context(**PHONE, locale=locale, java_script_enabled=javascript)
    watch = Watch(origin)
    context.on("request", lambda request: watch.requests.append((request.method, request.url)))
    context.on("console", watch._on_console)
    context.on("response", watch._on_response)
    context.expose_binding(
        "__hotlineCspViolation", lambda _source, text: watch.csp_violations.append(text)
    )
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        _watch_workers(context, page, watch)
        yield page, watch
    finally:
        context.close()


def _watch_workers(context: BrowserContext, page: Page, watch: Watch) -> None:
    """Attach a DevTools session to every worker the page starts, and enable its log.

    Workers start paused until every attached client lets them run, so none of their
    messages is missed."""
    session: CDPSession = context.new_cdp_session(page)

    def attached(event: dict[str, Any]) -> None:
        for number, method in enumerate(("Log.enable", "Runtime.runIfWaitingForDebugger")):
            session.send(
                "Target.sendMessageToTarget",
                {
                    "sessionId": event["sessionId"],
                    "message": json.dumps({"id": number + 1, "method": method}),
                },
            )

    session.on("Target.attachedToTarget", attached)
    session.on("Target.receivedMessageFromTarget", watch._on_worker_log)
    session.send(
        "Target.setAutoAttach",
        {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": False},
    )


# Everything a page could leave behind on the device, read by the page itself.
_STORAGE = """async () => ({
  localStorage: Object.keys(localStorage),
  sessionStorage: Object.keys(sessionStorage),
  indexedDB: (await indexedDB.databases()).map((db) => db.name),
  caches: await caches.keys(),
  serviceWorkers: (await navigator.serviceWorker.getRegistrations()).map((r) => r.scope),
})"""


def storage_left(page: Page) -> dict[str, list[str]]:
    """What the page's origin keeps on the device: names of stores, keys, cookies.

    Works with JavaScript disabled too (DevTools evaluates it, not the page)."""
    left: dict[str, list[str]] = page.evaluate(_STORAGE)
    left["cookies"] = [cookie["name"] for cookie in page.context.cookies()]
    return left


def storage_is_empty(page: Page) -> bool:
    """True when the origin keeps nothing at all: no cookie, web storage, IndexedDB, Cache
    Storage or service worker."""
    return not any(storage_left(page).values())


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG in docs/screenshots/ (name like "form-zh.png"), for the README."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True, type="png", animations="disabled")
    return path
