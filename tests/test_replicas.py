"""Two app replicas behind nginx, sharing one PostgreSQL archive: what ``deploy/`` runs, without Docker.

Starts, on loopback, a PostgreSQL server (Debian's binaries, ``tests/postgres.py``), two
``streamlit run`` replicas whose ``CVAE_ARCHIVE_URL`` points at it, and nginx with
``deploy/nginx.conf`` filled in the way ``deploy/compose.yaml`` fills it (only the listen address
and the list of replicas differ). Cheap requests find a routing cookie for each replica (nginx's
access log says which replica served what); a real Chromium (Playwright) then opens the app through
nginx in two browser contexts carrying those cookies, draws a 0 and saves it through the first
replica, and finds the item on the Archive page through the second. The access log must show
every request of each browser, its websocket included, answered by its own replica. A browser
without the cookie gets a fresh one from nginx, and so does one whose cookie is not a 32-hex id
(quotes, control bytes, 8 KB: checked against nginx alone, in front of a stand-in replica).
Everything is stopped at the end.

Skips when nginx, PostgreSQL, Chromium or the PostgreSQL driver is missing; under ``CI=true`` that
fails instead (``make test`` installs the Debian packages).
"""

from __future__ import annotations

import http.server
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from postgres import PostgresMissing, running_postgres
from servers import stop, wait_healthy

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "streamlit_app.py"
COMMITTED = ROOT / "checkpoints"
PROXY_TEMPLATE = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_S = 180  # a replica's start and first page on a busy two-core machine
ROUTE_COOKIE = "cvae_replica"  # set by deploy/nginx.conf
MAX_ROUTES = 64  # routing cookies tried to find one for each replica (all on one replica: 2^-63)
METRIC = '[data-testid="stMetric"]:has-text("Recognised digit") [data-testid="stMetricValue"]'
CANVAS = "canvas.upper-canvas"
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
IDLE = """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
          && !document.querySelector('[data-stale="true"]')"""
# deploy/nginx.conf's log_format cvae_replica
ACCESS = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) \d+ '
                    r"replica=(?P<replica>.*?) route=(?P<route>\S+) ")


def missing(what: str) -> None:
    """Skip locally, fail under CI: the replica test is part of ``make test``."""
    message = f"{what} (make test installs it with apt-get)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_config(*, listen: str, replicas: list[str]) -> str:
    """deploy/nginx.conf filled in as the nginx image's envsubst fills it from compose.yaml."""
    values = {"CVAE_PROXY_LISTEN": listen,
              "CVAE_UPSTREAM_SERVERS": " ".join(f"server {r};" for r in replicas)}
    text = PROXY_TEMPLATE.read_text()
    for name, value in values.items():
        assert "${" + name + "}" in text, f"{PROXY_TEMPLATE} lost its {name} variable"
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, "deploy/nginx.conf uses a variable compose.yaml does not set"
    return text


@contextmanager
def replica(name: str, *, archive_url: str, checkpoints: Path, work: Path) -> Iterator[str]:
    """One ``streamlit run`` of the app on loopback; yields its address ``127.0.0.1:PORT``."""
    port = free_port()
    env = {**os.environ, "CVAE_ARCHIVE_URL": archive_url, "CVAE_CHECKPOINT_DIR": str(checkpoints),
           "STREAMLIT_SERVER_COOKIE_SECRET": "one-secret-for-every-replica", "MALLOC_ARENA_MAX": "2"}
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless=true",
               f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
               "--server.fileWatcherType=none"]
    log_path = work / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", process, log_path, name=name, timeout_s=TIMEOUT_S)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def proxy(replicas: list[str], work: Path) -> Iterator[tuple[str, Path]]:
    """nginx in front of ``replicas`` with deploy/nginx.conf; yields (its URL, its access log)."""
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True)
    port = free_port()
    (prefix / "cvae.conf").write_text(proxy_config(listen=f"127.0.0.1:{port}", replicas=replicas))
    # The main context the nginx image has around conf.d/, cut to what a process of our own needs.
    (prefix / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix / "client_body"};
    proxy_temp_path {prefix / "proxy"};
    fastcgi_temp_path {prefix / "fastcgi"};
    uwsgi_temp_path {prefix / "uwsgi"};
    scgi_temp_path {prefix / "scgi"};
    include {prefix / "cvae.conf"};
}}
""")
    access, errors = prefix / "access.log", prefix / "error.log"
    with open(access, "wb") as out, open(errors, "wb") as err:
        process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
                                   stdout=out, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/_stcore/health", process, errors, name="nginx", timeout_s=30, poll_s=0.2)
        yield url, access
    finally:
        stop(process)


def requests_by_route(access: Path) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for line in access.read_text().splitlines():
        m = ACCESS.search(line)
        if m:
            out.setdefault(m["route"], []).append(m.groupdict())
    return out


@pytest.fixture(scope="module")
def checkpoints(request) -> Path:
    if any(COMMITTED.glob("*.safetensors")):
        return COMMITTED
    return request.getfixturevalue("tiny_checkpoints")


@pytest.fixture(scope="module")
def stack(checkpoints) -> Iterator[dict]:
    """PostgreSQL, two replicas on it and nginx in front; every process is stopped afterwards."""
    if not Path(NGINX).exists():
        missing("nginx not found")
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("the PostgreSQL driver psycopg is not installed (requirements.txt)")
    with tempfile.TemporaryDirectory(prefix="cvae-replicas-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers run as another user when we are root
        try:
            db = stack.enter_context(running_postgres()).url()
        except PostgresMissing as e:
            missing(str(e))
        replicas = [stack.enter_context(replica(f"replica-{i}", archive_url=db, checkpoints=checkpoints, work=work))
                    for i in (1, 2)]
        url, access = stack.enter_context(proxy(replicas, work))
        yield {"db": db, "replicas": replicas, "url": url, "access": access, "work": work}


def served_by(access: Path, route: str, *, timeout_s: float = 10.0) -> str:
    """The one replica that served requests routed by ``route``, once nginx has logged them (it
    writes a request's line after sending the answer)."""
    deadline = time.monotonic() + timeout_s
    while not (logged := requests_by_route(access).get(route)):
        if time.monotonic() > deadline:
            pytest.fail(f"nginx logged no request routed by {route!r}")
        time.sleep(0.1)
    (where,) = {r["replica"] for r in logged}
    return where


def routes_to_each_replica(stack: dict) -> dict[str, str]:
    """replica -> a routing cookie value that nginx sends there, found with cheap health requests."""
    found: dict[str, str] = {}
    for i in range(MAX_ROUTES):
        route = f"{i:032x}"  # the form nginx issues (and the only one it keeps)
        request = urllib.request.Request(f"{stack['url']}/_stcore/health", headers={"Cookie": f"{ROUTE_COOKIE}={route}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        found.setdefault(served_by(stack["access"], route), route)
        if len(found) == len(stack["replicas"]):
            return found
    pytest.fail(f"{MAX_ROUTES} routing cookies all led to {sorted(found)}")


def open_app(browser, stack: dict, route: str, path: str = ""):
    """A new browser (context) whose routing cookie is ``route``, on the app's page ``path``."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": ROUTE_COOKIE, "value": route, "url": stack["url"]}])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(f"{stack['url']}/{path}")
    return page


def draw_zero(page) -> str:
    """Draw a 0 on the canvas and return the recognised digit."""
    page.wait_for_selector(CANVAS)
    box = page.locator(CANVAS).bounding_box()
    ring = [(140 + 65 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi)) for t in range(26)]
    page.mouse.move(box["x"] + ring[0][0], box["y"] + ring[0][1])
    page.mouse.down()
    for x, y in ring[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
    page.mouse.up()
    page.wait_for_selector(METRIC)
    return page.locator(METRIC).inner_text().strip()


def test_proxy_config_is_the_deployed_template():
    """The config under test is deploy/nginx.conf itself, with compose's two variables filled in."""
    text = proxy_config(listen="80", replicas=["app:8501"])
    assert "server app:8501;" in text and "listen 80 default_server;" in text
    assert "hash $cvae_replica consistent;" in text  # sticky by cookie, not by client address
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    assert './nginx.conf:/etc/nginx/templates/default.conf.template' in compose
    assert 'CVAE_UPSTREAM_SERVERS: "server app:8501;"' in compose and 'CVAE_PROXY_LISTEN: "80"' in compose


def test_a_new_browser_gets_a_routing_cookie(stack):
    """nginx hands a browser without the cookie a fresh routing key, and routes by that same key."""
    with urllib.request.urlopen(f"{stack['url']}/_stcore/health", timeout=30) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    ours = [c for c in cookies if c.startswith(f"{ROUTE_COOKIE}=")]
    assert len(ours) == 1, cookies
    route = re.fullmatch(rf"{ROUTE_COOKIE}=([0-9a-f]{{32}}); Path=/; HttpOnly; SameSite=Lax", ours[0])[1]
    assert served_by(stack["access"], route) in stack["replicas"]


class _Healthy(http.server.BaseHTTPRequestHandler):
    """A stand-in replica for the proxy-only tests: every path answers 200 "ok"."""

    def do_GET(self) -> None:  # the name http.server calls
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def bare_proxy() -> Iterator[str]:
    """deploy/nginx.conf in front of one stand-in replica (no app, no database); yields its URL."""
    if not Path(NGINX).exists():
        missing("nginx not found")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="cvae-proxy-") as tmp:
            Path(tmp).chmod(0o755)
            with proxy([f"127.0.0.1:{upstream.server_address[1]}"], Path(tmp)) as (url, _):
                yield url
    finally:
        upstream.shutdown()
        upstream.server_close()


def raw_get(url: str, cookie: bytes) -> tuple[int, list[bytes]]:
    """GET /_stcore/health with a ``Cookie`` header sent byte for byte (urllib refuses control bytes);
    the status and the ``Set-Cookie`` values of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /_stcore/health HTTP/1.1\r\nHost: " + host.encode() + b"\r\nCookie: " + cookie
                     + b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(head[0].split()[1])
    return status, [line.split(b":", 1)[1].strip() for line in head[1:] if line.lower().startswith(b"set-cookie:")]


HOSTILE_ROUTES = {
    "quotes": b'"; Domain=evil.example; x="',
    "control-bytes": b"abc\x01\x7fdef",
    "8-kb": b"a" * 8192,
    "31-hex": b"0" * 31,
    "33-hex": b"0" * 33,
    "upper-hex": b"A" * 32,
}


@pytest.mark.parametrize("value", HOSTILE_ROUTES.values(), ids=HOSTILE_ROUTES.keys())
def test_a_hostile_routing_cookie_is_never_echoed(bare_proxy, value):
    """Only a 32-hex routing key (what nginx issues) is kept; any other value gets a fresh one."""
    status, cookies = raw_get(bare_proxy, f"{ROUTE_COOKIE}=".encode() + value)
    if status == 400:  # nginx refused the header itself: nothing echoed either
        assert not cookies
        return
    assert status == 200
    assert len(cookies) == 1, cookies
    issued = re.fullmatch(rb"cvae_replica=([0-9a-f]{32}); Path=/; HttpOnly; SameSite=Lax", cookies[0])
    assert issued is not None, cookies[0][:200]
    assert issued[1] != value[:32]


def test_a_well_formed_routing_cookie_is_kept(bare_proxy):
    route = b"0123456789abcdef0123456789abcdef"
    status, cookies = raw_get(bare_proxy, f"{ROUTE_COOKIE}=".encode() + route)
    assert status == 200
    assert cookies == [b"cvae_replica=" + route + b"; Path=/; HttpOnly; SameSite=Lax"]


def test_saved_through_one_replica_seen_through_the_other(stack):
    """Two browsers pinned by their cookies to different replicas: a digit saved in one is in the other's
    Archive page, and every request of each, its websocket included, reached its own replica."""
    from playwright.sync_api import sync_playwright

    from cvae_core.archive import Archive

    routes = routes_to_each_replica(stack)
    first, second = stack["replicas"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            writer = open_app(browser, stack, routes[first])
            writer.get_by_role("heading", name="Draw & recognise").wait_for()
            writer.wait_for_selector(CANVAS)
            writer.wait_for_function(IDLE)  # the first run is over: its websocket is open and the canvas live
            assert draw_zero(writer) in "0123456789"
            writer.wait_for_function(IDLE)  # the whole result is drawn, the save button with it
            writer.get_by_role("button", name="Save to archive").click()
            saved = writer.locator('[data-testid="stAlertContentSuccess"]:has-text("Saved to the archive as item")')
            saved.or_(writer.locator(ERRORS)).first.wait_for()
            assert saved.count() == 1, writer.locator(ERRORS).all_inner_texts()
            item = re.search(r"#(\d+)", saved.inner_text())[1]

            reader = open_app(browser, stack, routes[second], "archive")
            reader.get_by_role("heading", name="Archive").wait_for()
            reader.get_by_text("1 saved item", exact=False).wait_for()
            assert reader.locator(ERRORS).count() == 0, reader.locator(ERRORS).all_inner_texts()
            writer.context.close()  # nginx logs a websocket when it closes
            reader.context.close()
        finally:
            browser.close()

    archive = Archive.from_url(stack["db"])
    try:
        assert [i.id for i in archive.list()] == [int(item)]
    finally:
        archive.engine.dispose()

    deadline = time.monotonic() + 30
    while True:
        log = requests_by_route(stack["access"])
        streams = {where: [r for r in log.get(route, []) if r["path"].startswith("/_stcore/stream")]
                   for where, route in routes.items()}
        if all(any(r["status"] == "101" for r in s) for s in streams.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for where, route in routes.items():
        assert {r["replica"] for r in log[route]} == {where}, f"session {route} left its replica"
        assert any(r["status"] == "101" for r in streams[where]), f"no websocket through nginx for {where}"
