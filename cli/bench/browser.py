"""`hotline bench browser`: what the worker's phone pays for the web form.

Debian's Chromium, driven by Playwright as a 360x740 phone (headless, the site's real CSP),
loads the form of a RUNNING intake (`hotline up`'s, or a test session's) and drives the
page's own crypto worker through the protocol of issue 16's contract (§7): the bench creates
`new Worker(<crypto-worker.js next to the page's form.js>, {type: "module"})` in the page and
times each op from postMessage to the reply, on the page's clock. Figures, each beside an
anchor measured in the same run (or a target of the issue):

1. page weight of the form's first load before the crypto worker (loaded as a phone does:
   the form starts its worker on first use, and the bench refuses to weigh a load that
   fetched it), uncompressed
   and as transferred (body as sent + response headers); then the worker's own bytes
   (crypto-worker.js and every module it imports, vendored libsodium included). Anchor: the
   issue's 100 KB budget.
2. Argon2id receipt derivation (`derive`), unthrottled and throttled; anchors: PyNaCl's
   `derive_receipt` in this process, and the issue's 3 s target.
3. sealing one report (2,000 bytes of content to 4 content keys, and 200 bytes of contact
   details to 1 identity key: the two envelopes a report with contact details makes) and one
   1,000,000-byte attachment to the 4 content keys; anchor: PyNaCl `seal_envelope` of the same.
4. proof of work at the resting difficulty (GET /api/challenge) and at the flood difficulty
   (Settings().pow_difficulty + 6: a submission rate 64x the calm one), on challenges made
   here with `new_challenge` (solving needs no server key). Browser and Python solve the SAME
   challenges and both count from 0, so they hash exactly as often: the ratio is per hash.
5. the status page's `unlock` (issue 17: the same Argon2id, the reply key kept in the
   worker), unthrottled and throttled; anchor: PyNaCl's `derive_receipt`.

How the CPU is throttled. DevTools' `Emulation.setCPUThrottlingRate` slows only the page's
main thread: in Chromium's renderer it is a per-thread throttler, and measured here the
crypto worker ran as fast with it as without; sent to the worker's own target (through
`Target.setAutoAttach`) it is refused, "Operation is only supported for pages, not workers".
So neither reaches the dedicated worker, where all the work is. The bench throttles the
browser's renderer processes instead, the way that throttler works but for every thread: it
stops them (SIGSTOP) and resumes them (SIGCONT) so that they stay stopped (rate - 1) times as
long as the CPU time they use (RendererThrottle). The "throttle check" figure times the same
loop on the page's main thread under both throttles, so they can be compared on every run.
Linux only (signals, and CPU time from /proc).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import click
import httpx

from hotline.shared.config import Settings
from hotline.shared.envelope import EnvelopeKind, seal_envelope
from hotline.shared.keys import b64encode, generate_keypair, key_id
from hotline.shared.pow import MAX_DIFFICULTY, new_challenge, solve
from hotline.shared.receipt import derive_receipt, new_receipt

from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

PHONE: Final[dict[str, Any]] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
WEIGHT_BUDGET_BYTES: Final = 100_000  # issue 16: "the form's first load under 100 KB"
DERIVE_TARGET_MS: Final = 3_000.0  # issue 16: "a low-end phone finishes in under 3 s"
FLOOD_EXTRA_BITS: Final = 6  # one bit per doubling of the rate: 2^6 = 64x the calm rate
REPORT_BYTES: Final = 2_000
CONTACT_BYTES: Final = 200
ATTACHMENT_BYTES: Final = 1_000_000
CONTENT_KEYS: Final = 4
IDENTITY_KEYS: Final = 1
ROUTING: Final[dict[str, Any]] = {
    "categories": ["wages"],
    "factory": "F-001",
    "language": "en",
    "urgent": False,
}
THROTTLE_SLICE_S: Final = 0.005
CHECK_LOOP_ITERATIONS: Final = 20_000_000

# Installed in the page: starts the crypto worker and answers `window.__benchCall(op, args)`
# with the worker's reply ({ok, result} or {ok: false, reason, message}).
_START_WORKER = """(url) => {
  const worker = new Worker(url, { type: "module" });
  const waiting = new Map();
  let next = 0;
  worker.onmessage = (event) => {
    const resolve = waiting.get(event.data.id);
    waiting.delete(event.data.id);
    if (resolve) resolve(event.data);
  };
  worker.onerror = (event) => {
    for (const resolve of waiting.values()) {
      resolve({ ok: false, reason: "worker-error", message: String(event.message) });
    }
    waiting.clear();
  };
  window.__benchCall = (op, args) => new Promise((resolve) => {
    next += 1;
    waiting.set(next, resolve);
    worker.postMessage({ id: next, op, ...args });
  });
}"""

# One call of an op, timed on the page's clock; a plaintext of `plaintextBytes` random bytes
# is made first (outside the timing) when asked for. Returns {ms, result} or {error}.
_TIME_OP = """async ({ op, args, plaintextBytes }) => {
  if (plaintextBytes !== null) {
    const plaintext = new Uint8Array(plaintextBytes);
    for (let i = 0; i < plaintext.length; i += 65536) {
      crypto.getRandomValues(plaintext.subarray(i, i + 65536));
    }
    args = { ...args, plaintext };
  }
  const started = performance.now();
  const reply = await window.__benchCall(op, args);
  const ms = performance.now() - started;
  if (!reply.ok) return { error: `${reply.reason}: ${reply.message}` };
  // An envelope is not needed back here; a derivation's or solution's result is checked.
  return { ms, result: op === "seal" ? null : reply.result };
}"""

# A fixed amount of plain JavaScript work on the page's main thread (for the throttle check).
_MAIN_THREAD_LOOP = """(iterations) => {
  const started = performance.now();
  let x = 0;
  for (let i = 0; i < iterations; i += 1) x = (x * 31 + i) | 0;
  return [performance.now() - started, x];
}"""

# The crypto worker's URL as form.js makes it: `new URL("crypto-worker.js", import.meta.url)`.
_WORKER_URL = """() => {
  const script = document.querySelector('script[type="module"][src*="/static/v/"]');
  const sheet = document.querySelector('link[rel="stylesheet"][href*="/static/v/"]');
  const base = script ? script.src : sheet ? sheet.href : null;
  return base ? new URL("crypto-worker.js", base).href : null;
}"""


def _figure(
    figure: str,
    value: float,
    unit: str,
    anchor: str,
    anchor_value: float,
    extra: dict[str, Any] | None = None,
) -> Figure:
    """A figure rounded for reading: whole bytes, anything else to three significant digits
    (a proof of work of a few bits is a few hundredths of a millisecond in Python, which a
    fixed 0.1 ms would round to nothing). Lower is better for every figure of this bench
    but the throttle check, which says what it wants."""

    def readable(number: float) -> float:
        return float(round(number)) if unit == "bytes" else float(f"{number:.3g}")

    return Figure(
        figure, readable(value), unit, anchor, readable(anchor_value), "lower", extra or {}
    )


@click.command("browser")
@click.option(
    "--intake",
    "intake_url",
    default=None,
    metavar="URL",
    help="A running intake (default: the configured one, as `hotline up` serves it).",
)
@click.option(
    "--throttle",
    default=4.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="CPU slowdown for the throttled figures.",
)
@click.option("--rounds", default=3, show_default=True, help="Timed rounds per figure (median).")
@JSON_OPTION
def bench_browser(intake_url: str | None, throttle: float, rounds: int, as_json: bool) -> None:
    """What the web form costs a worker's phone, in Debian's Chromium as a 360x740 phone:
    page weight, Argon2id receipt derivation, sealing and proof of work in the page's crypto
    worker, throttled and not, each beside the same work in Python or the issue's target.

    Needs a running system (`hotline up`, or a test session's): it measures the intake at
    --intake and starts nothing itself. The throttle stops and resumes the browser's renderer
    processes by their CPU time: DevTools' CPU throttle does not reach a dedicated worker.
    """
    if rounds < 1:
        raise click.BadParameter("1 or more", param_hint="--rounds")
    settings = Settings()
    intake = (intake_url or settings.intake_url).rstrip("/")
    resting_difficulty = _resting_difficulty(intake)
    flood_difficulty = min(MAX_DIFFICULTY, settings.pow_difficulty + FLOOD_EXTRA_BITS)

    def emit(figure: Figure) -> None:
        echo_figure(figure, as_json)

    say(_load_text("before"))
    with _phone_browser() as browser:
        weights, page = _load_form(browser, intake)
        for figure in weights:
            emit(figure)
        run = _Run(browser, page, throttle, rounds, emit)
        run.throttle_check()
        run.derive()
        run.seal()
        run.proof_of_work(resting_difficulty, "resting")
        run.proof_of_work(flood_difficulty, "flood")
        run.page = _load_status_page(page, intake)
        run.unlock()
    say(_load_text("after"))


def _load_text(when: str) -> str:
    """The machine's load: a shared machine's wall times include waiting for a core."""
    return f"load average {when}: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _resting_difficulty(intake: str) -> int:
    """The form must load, and GET /api/challenge's difficulty is the resting one."""
    try:
        form = httpx.get(f"{intake}/en/", timeout=10.0)
        challenge = httpx.get(f"{intake}/api/challenge", timeout=10.0)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"intake does not answer at {intake} ({type(exc).__name__}): start the system "
            "with `hotline up`, or pass --intake URL of a running one"
        ) from exc
    if form.status_code != 200 or challenge.status_code != 200:
        raise click.ClickException(
            f"intake at {intake} answered {form.status_code} for /en/ and "
            f"{challenge.status_code} for /api/challenge: is it this version's intake?"
        )
    difficulty = challenge.json()["difficulty"]
    if not isinstance(difficulty, int):
        raise click.ClickException("GET /api/challenge gave no integer difficulty")
    return difficulty


@contextmanager
def _phone_browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise click.ClickException(
            "Playwright for Python is not installed in this environment: it comes with the "
            "project's `test` extra (pip install -e '.[test]'; scripts/install.sh does it)"
        ) from exc
    executable = shutil.which("chromium")
    if executable is None:
        raise click.ClickException(
            "Chromium is not installed: run scripts/install-browser.sh (Playwright's own "
            "browser download is never used)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class _Loaded:
    url: str
    body_bytes: int
    transferred_bytes: int


def _load_form(browser: Browser, intake: str) -> tuple[list[Figure], Page]:
    """Load the form and weigh it (the page starts its crypto worker only once someone
    fills it in, so the load holds none of the worker's files; the bench says so if it
    does); then start the worker in the page and weigh what it fetches. Returns the figures
    and the page."""
    say("page weight: loading the form as a phone does")
    context = browser.new_context(**PHONE, locale="en-US")
    page = context.new_page()
    finished: list[Request] = []  # weighed afterwards: a handler must not block on a body
    context.on("requestfinished", lambda request: finished.append(request))
    response = page.goto(f"{intake}/en/", wait_until="networkidle")
    if response is None or response.status != 200:
        raise click.ClickException(f"the form at {intake}/en/ did not load")
    page_loads = _weigh(finished)
    worker_url = page.evaluate(_WORKER_URL)
    if not isinstance(worker_url, str):
        raise click.ClickException("the form names no form.js or versioned static file")
    if any(item.url == worker_url for item in page_loads):
        raise click.ClickException(
            "the form fetched its crypto worker while loading, before anyone touched it: "
            "it should start the worker on first use (form.js, focusin), and the page "
            "weight would otherwise include the worker's half megabyte"
        )
    say(f"worker weight: starting the crypto worker ({worker_url.rsplit('/', 1)[-1]})")
    finished.clear()
    page.evaluate(_START_WORKER, worker_url)
    reply = page.evaluate("() => window.__benchCall('new-receipt', {})")
    if not reply.get("ok"):
        raise click.ClickException(f"the crypto worker did not answer: {reply}")
    page.wait_for_load_state("networkidle")
    worker_loads = _weigh(finished)
    if not any(item.url == worker_url for item in worker_loads):
        raise click.ClickException("the crypto worker's script was not fetched")
    budget = "issue 16's first-load budget"
    figures = [
        _figure(
            f"page weight before the worker ({len(page_loads)} files), uncompressed",
            sum(item.body_bytes for item in page_loads),
            "bytes",
            budget,
            WEIGHT_BUDGET_BYTES,
        ),
        _figure(
            "page weight before the worker, as transferred",
            sum(item.transferred_bytes for item in page_loads),
            "bytes",
            budget,
            WEIGHT_BUDGET_BYTES,
        ),
        _figure(
            f"crypto worker's own bytes ({len(worker_loads)} files), uncompressed",
            sum(item.body_bytes for item in worker_loads),
            "bytes",
            budget,
            WEIGHT_BUDGET_BYTES,
        ),
        _figure(
            "crypto worker's own bytes, as transferred",
            sum(item.transferred_bytes for item in worker_loads),
            "bytes",
            budget,
            WEIGHT_BUDGET_BYTES,
        ),
    ]
    return figures, page


def _load_status_page(page: Page, intake: str) -> Page:
    """The status page (issue 17) in the same phone, with its own crypto worker started."""
    say("status page: loading it and starting its crypto worker")
    response = page.goto(f"{intake}/en/status", wait_until="networkidle")
    if response is None or response.status != 200:
        raise click.ClickException(f"the status page at {intake}/en/status did not load")
    worker_url = page.evaluate(_WORKER_URL)
    if not isinstance(worker_url, str):
        raise click.ClickException("the status page names no versioned script")
    page.evaluate(_START_WORKER, worker_url)
    return page


def _weigh(requests: list[Request]) -> list[_Loaded]:
    """Bytes of each finished request: its body as the page got it (decoded), and what came
    over the connection (response headers and the body as sent)."""
    loaded = []
    for request in requests:
        response = request.response()
        if response is None:
            continue
        sizes = request.sizes()
        loaded.append(
            _Loaded(
                request.url,
                len(response.body()),
                sizes["responseHeadersSize"] + sizes["responseBodySize"],
            )
        )
    return loaded


class RendererThrottle:
    """Slows the browser's renderer processes `rate` times. A thread lets them run for a slice
    (THROTTLE_SLICE_S), stops them (SIGSTOP), and keeps them stopped until they have been
    stopped (rate - 1) times as long as the CPU time they have used, then resumes them
    (SIGCONT): work that needs t seconds of CPU takes rate * t. Counting CPU time rather than
    wall time keeps the throttle at its rate on a loaded machine, where a process waits for a
    core anyway. Every thread of a renderer is slowed, the page's crypto worker included (why
    not DevTools' throttle: see the module docstring). Linux: CPU time comes from /proc."""

    def __init__(self, browser: Browser, rate: float) -> None:
        session = browser.new_browser_cdp_session()
        processes = session.send("SystemInfo.getProcessInfo")["processInfo"]
        session.detach()
        renderers = [process["id"] for process in processes if process["type"] == "renderer"]
        # Not the browser's own UI renderer: its CPU time is not the page's.
        self.pids = [pid for pid in renderers if not _is_ui_renderer(pid)]
        if not self.pids or not os.path.exists(f"/proc/{self.pids[0]}/task"):
            raise click.ClickException(
                "no renderer process of Chromium to throttle (the throttle needs Linux's /proc)"
            )
        self.rate = rate

    @contextmanager
    def applied(self) -> Iterator[None]:
        if self.rate == 1:
            yield
            return
        done = threading.Event()
        thread = threading.Thread(target=self._cycle, args=(done,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _cycle(self, done: threading.Event) -> None:
        first = self._cpu_seconds()
        stopped = 0.0
        try:
            while not done.is_set():
                time.sleep(THROTTLE_SLICE_S)
                self._signal(signal.SIGSTOP)
                halted = time.monotonic()
                owed = (self.rate - 1) * (self._cpu_seconds() - first) - stopped
                time.sleep(max(0.0, owed))
                self._signal(signal.SIGCONT)
                stopped += time.monotonic() - halted
        finally:
            self._signal(signal.SIGCONT)

    def _cpu_seconds(self) -> float:
        """CPU time the renderers' threads have used (first field of each schedstat, ns)."""
        total = 0
        for pid in self.pids:
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                        total += int(stat.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread or renderer that ended
                continue
        return total / 1e9

    def _signal(self, number: signal.Signals) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, number)
            except ProcessLookupError:  # a renderer that exited (the spare one) is no matter
                pass


def _is_ui_renderer(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"--top-chrome-webui" in cmdline.read()
    except FileNotFoundError:
        return True  # gone: nothing to throttle


@dataclass(frozen=True)
class _Timings:
    """Medians over the rounds, in ms: Python's anchor, the worker unthrottled and throttled."""

    python: float
    plain: float
    throttled: float


class _Run:
    """The timed figures, over the page's crypto worker and this process's PyNaCl.

    Each round times the Python anchor, the worker unthrottled and the worker throttled one
    after the other, so a change in the machine's load (it is shared) falls on all three."""

    def __init__(
        self,
        browser: Browser,
        page: Page,
        rate: float,
        rounds: int,
        emit: Callable[[Figure], None],
    ) -> None:
        self.page = page
        self.rate = rate
        self.rounds = rounds
        self.emit = emit
        self.throttle = RendererThrottle(browser, rate)
        self.label = f"{rate:g}x throttle"

    def _worker_call(
        self, op: str, args: dict[str, Any], plaintext_bytes: int | None, *, throttled: bool
    ) -> tuple[float, Any]:
        """One op in the worker: its time in ms (page clock) and its result."""
        request = {"op": op, "args": args, "plaintextBytes": plaintext_bytes}
        if throttled:
            with self.throttle.applied():
                timed = self.page.evaluate(_TIME_OP, request)
        else:
            timed = self.page.evaluate(_TIME_OP, request)
        if "error" in timed:
            raise click.ClickException(f"the crypto worker refused {op}: {timed['error']}")
        return timed["ms"], timed["result"]

    def _time(
        self,
        op: str,
        args_of_round: Callable[[int], dict[str, Any]],
        python_of_round: Callable[[int], object],
        *,
        plaintext_bytes: int | None = None,
        check: Callable[[int, Any], bool] = lambda _round, _result: True,
        warm_up: dict[str, Any] | None = None,
    ) -> _Timings:
        """Rounds of (Python, worker, throttled worker) after one untimed call of the op (the
        first call pays for compiling and for growing the wasm memory)."""
        self._worker_call(op, warm_up or args_of_round(0), plaintext_bytes, throttled=False)
        python: list[float] = []
        plain: list[float] = []
        throttled: list[float] = []
        for round_ in range(self.rounds):
            started = time.perf_counter()
            python_of_round(round_)
            python.append((time.perf_counter() - started) * 1000)
            for throttle, times in ((False, plain), (True, throttled)):
                ms, result = self._worker_call(
                    op, args_of_round(round_), plaintext_bytes, throttled=throttle
                )
                if not check(round_, result):
                    raise click.ClickException(f"the worker's {op} differs from Python's")
                times.append(ms)
        return _Timings(
            statistics.median(python), statistics.median(plain), statistics.median(throttled)
        )

    def throttle_check(self) -> None:
        say(f"throttle check: a loop on the page's main thread, {self.label} two ways")
        session = self.page.context.new_cdp_session(self.page)

        def loop_ms() -> float:
            return float(self.page.evaluate(_MAIN_THREAD_LOOP, CHECK_LOOP_ITERATIONS)[0])

        loop_ms()  # warm up the compiler
        plain, process, devtools = [], [], []
        for _ in range(self.rounds):
            plain.append(loop_ms())
            with self.throttle.applied():
                process.append(loop_ms())
            session.send("Emulation.setCPUThrottlingRate", {"rate": self.rate})
            devtools.append(loop_ms())
            session.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        session.detach()
        plain_ms = statistics.median(plain)
        self.emit(
            _figure(
                f"throttle check, renderer stop/resume at {self.label}: main-thread slowdown",
                statistics.median(process) / plain_ms,
                "x",
                "DevTools Emulation.setCPUThrottlingRate",
                statistics.median(devtools) / plain_ms,
                {"wanted": "ratio near 1: both throttles slow the main thread alike"},
            )
        )

    def derive(self) -> None:
        timings = self._argon2("derive", "receipt derivation (Argon2id)")
        name = "Argon2id derive in the worker"
        anchor = "PyNaCl derive_receipt in this process"
        self.emit(_figure(f"{name}, unthrottled", timings.plain, "ms", anchor, timings.python))
        self.emit(_figure(f"{name}, {self.label}", timings.throttled, "ms", anchor, timings.python))
        self.emit(
            _figure(
                f"{name}, {self.label}",
                timings.throttled,
                "ms",
                "issue 16's target",
                DERIVE_TARGET_MS,
            )
        )

    def unlock(self) -> None:
        """The status page's derivation: the same Argon2id, through its `unlock` op (which
        keeps the reply key in the worker and returns the lookup token)."""
        timings = self._argon2("unlock", "status page unlock (Argon2id)")
        name = "Argon2id unlock on the status page"
        anchor = "PyNaCl derive_receipt in this process"
        self.emit(_figure(f"{name}, unthrottled", timings.plain, "ms", anchor, timings.python))
        self.emit(_figure(f"{name}, {self.label}", timings.throttled, "ms", anchor, timings.python))

    def _argon2(self, op: str, what: str) -> _Timings:
        """Rounds of a receipt derivation by the worker's `op`, each checked against PyNaCl's."""
        say(f"{what}: PyNaCl, the worker, the worker at {self.label}")
        receipts = [new_receipt() for _ in range(self.rounds)]
        expected = [derive_receipt(receipt).lookup_token.hex() for receipt in receipts]
        return self._time(
            op,
            lambda round_: {"receipt": receipts[round_]},
            lambda round_: derive_receipt(receipts[round_]),
            check=lambda round_, result: bool(result["lookup_token"] == expected[round_]),
        )

    def seal(self) -> None:
        content = _keys(CONTENT_KEYS)
        identity = _keys(IDENTITY_KEYS)
        case_id = str(uuid.uuid4())
        anchor = "PyNaCl seal_envelope of the same"
        envelopes: list[tuple[EnvelopeKind, str, int, dict[str, bytes]]] = [
            ("content", "the report's content", REPORT_BYTES, content),
            ("identity", "its contact details", CONTACT_BYTES, identity),
            ("attachment", "an attachment", ATTACHMENT_BYTES, content),
        ]
        timings: dict[str, _Timings] = {}
        for kind, what, size, keys in envelopes:
            say(f"sealing {what} ({size:,} bytes to {len(keys)} keys)")
            timings[kind] = self._seal_timings(kind, size, keys, case_id)
        report = f"seal a {REPORT_BYTES:,}-byte report to {CONTENT_KEYS}+{IDENTITY_KEYS} keys"
        attachment = f"seal a {ATTACHMENT_BYTES:,}-byte attachment to {CONTENT_KEYS} keys"
        content_t, identity_t, attachment_t = (timings[kind] for kind, *_ in envelopes)
        python_report = content_t.python + identity_t.python
        for label, report_ms, attachment_ms in (
            ("unthrottled", content_t.plain + identity_t.plain, attachment_t.plain),
            (self.label, content_t.throttled + identity_t.throttled, attachment_t.throttled),
        ):
            self.emit(_figure(f"{report}, {label}", report_ms, "ms", anchor, python_report))
            self.emit(
                _figure(f"{attachment}, {label}", attachment_ms, "ms", anchor, attachment_t.python)
            )

    def _seal_timings(
        self, kind: EnvelopeKind, size: int, keys: dict[str, bytes], case_id: str
    ) -> _Timings:
        plaintext = secrets.token_bytes(size)
        args = {
            "kind": kind,
            "case_id": case_id,
            "routing": ROUTING,
            "recipients": {kid: b64encode(public) for kid, public in keys.items()},
        }

        def python(_round: int) -> None:
            seal_envelope(plaintext, case_id=case_id, kind=kind, routing=ROUTING, recipients=keys)

        return self._time("seal", lambda _round: args, python, plaintext_bytes=size)

    def proof_of_work(self, difficulty: int, name: str) -> None:
        say(f"proof of work at the {name} difficulty ({difficulty} bits)")
        key = secrets.token_bytes(32)  # any key: solving does not check the signature
        challenges = [new_challenge(key, difficulty, time.time()) for _ in range(self.rounds)]
        solutions: dict[int, str] = {}

        def python(round_: int) -> None:
            solutions[round_] = solve(challenges[round_], difficulty)

        timings = self._time(
            "pow",
            lambda round_: {"challenge": challenges[round_], "difficulty": difficulty},
            python,
            # The smallest counter, as Python's: the same number of hashes, the same work.
            check=lambda round_, result: bool(result["solution"] == solutions[round_]),
            warm_up={"challenge": challenges[0], "difficulty": min(difficulty, 8)},
        )
        figure = f"proof of work, {name} difficulty {difficulty} bits"
        anchor = "shared.pow.solve in Python, same challenges"
        self.emit(_figure(f"{figure}, unthrottled", timings.plain, "ms", anchor, timings.python))
        self.emit(
            _figure(f"{figure}, {self.label}", timings.throttled, "ms", anchor, timings.python)
        )


def _keys(count: int) -> dict[str, bytes]:
    """Fresh X25519 public keys by key id (the private halves are not needed here)."""
    publics = [generate_keypair()[1] for _ in range(count)]
    return {key_id(public): public for public in publics}
