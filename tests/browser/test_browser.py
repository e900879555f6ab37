#!/usr/bin/python3
"""Browser tests of the web client (web/) in headless Chromium, driven by
Selenium through chromium-driver. Starts its own chatd on a free port with a
temporary SQLite database, and a tiny second HTTP server as a foreign
origin; stops both at the end. Every wait is a WebDriverWait with a
deadline, never a fixed sleep.

  test_browser.py --chatd bin/chatd [--screenshots DIR]

Checks: (a) two browser users (WebSocket, SSE) and a terminal user
(bin/chat --headless, long poll) chat, each sees every message once, in order;
(b) each transport, and a switch across all four while the other user
sends: nothing lost or shown twice; (c) a message holding HTML is shown
as text, with no console errors and no CSP violations; (d) a page on a
foreign origin cannot post a message, open the stream or the WebSocket
with the user's cookie."""
import argparse
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

DEADLINE_S = 20
TRANSPORTS = ["short", "long", "ws", "sse"]
failures = []


T0 = time.monotonic()


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what + f"  [{time.monotonic() - T0:.1f} s]", flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method, url, body=None, headers=None, ctx=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Chatd:
    def __init__(self, binary, tls=False):
        self.dir = tempfile.mkdtemp(prefix="chat-browser-")
        self.port = free_port()
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "chatd.log"), "w")
        # --pwhash-cost min: libsodium's least argon2id cost, for tests only
        # (as the e2e harness does), so logins take no CPU from the browser.
        self.argv = [binary, "--port", str(self.port), "--db", os.path.join(self.dir, "chat.db"),
                     "--transfer-delay-ms", "50", "--pwhash-cost", "min"]
        self.ctx = None
        if tls:                 # a throwaway CA and server certificate (make certs)
            certs = os.path.join(self.dir, "certs")
            subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                                         "make-certs.sh"), certs], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.argv += ["--tls-cert", os.path.join(certs, "server.pem"),
                          "--tls-key", os.path.join(certs, "server.key")]
            self.ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_healthy()

    def wait_healthy(self):
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                if http_json("GET", self.base + "/healthz", ctx=self.ctx)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)    # polling the health check, under the deadline above
        self.stop()
        raise RuntimeError("chatd did not start")

    def ended_cleanly(self, rc, what):
        """chatd's exit status after SIGTERM: 0, else (a crash, a sanitizer's
        report) its log's end is shown."""
        if rc != 0:
            self.log.flush()
            with open(os.path.join(self.dir, "chatd.log")) as f:
                print(f.read()[-3000:])
        check(rc == 0, f"chatd exited with 0 after SIGTERM ({what}): {rc}")

    def restart(self):
        self.proc.terminate()
        self.ended_cleanly(self.proc.wait(10), "restart")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_healthy()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.ended_cleanly(self.proc.wait(10), "end")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                check(False, "chatd did not stop within 10 s of SIGTERM")
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


FOREIGN_PAGE = """<!doctype html><title>foreign</title><script>
const target = %s;
const results = {};
fetch(target + '/api/v1/messages', { method: 'POST', credentials: 'include', mode: 'no-cors',
  headers: { 'Content-Type': 'text/plain' },
  body: JSON.stringify({ body: 'posted by a foreign page', client_msg_id: 'foreign-1' }) })
  .then(() => { results.post = 'sent'; }, () => { results.post = 'failed'; })
  .then(() => fetch(target + '/api/v1/transfers', { method: 'POST', credentials: 'include',
    mode: 'no-cors', headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ to: 'bob', amount_cents: 777, idempotency_key: 'foreign-1' }) }))
  .catch(() => {})
  .then(() => new Promise((done) => {
    const ws = new WebSocket(target.replace('http', 'ws') + '/api/v1/ws', 'chat.v1');
    ws.onopen = () => { ws.send(JSON.stringify({ op: 'hello', token: '', after: 0 })); };
    ws.onmessage = (m) => { results.ws = 'message ' + m.data; ws.close(); };
    ws.onclose = () => { results.ws = results.ws || 'closed'; done(); };
  }))
  .then(() => new Promise((done) => {
    const es = new EventSource(target + '/api/v1/stream', { withCredentials: true });
    es.addEventListener('ready', () => { results.sse = 'ready'; es.close(); done(); });
    es.onerror = () => { results.sse = results.sse || 'error'; es.close(); done(); };
  }))
  .then(() => { window.results = results; document.title = 'done'; });
</script>"""


class Foreign:
    """A second origin: 127.0.0.1 on another port, serving one page."""
    def __init__(self, target):
        page = (FOREIGN_PAGE % json.dumps(target)).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Terminal:
    """bin/chat --headless: lines in on stdin, events out as JSON lines on
    stdout, states and acks on stderr (client/headless.c)."""
    def __init__(self, chat_bin, base, user, password, transport):
        env = dict(os.environ, CHAT_PASSWORD=password)
        self.proc = subprocess.Popen([chat_bin, "--server", base, "--user", user, "--register",
                                      "--transport", transport, "--headless"], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.cond = threading.Condition()
        self.out, self.err = [], []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self.read, args=(stream, lines), daemon=True).start()

    def read(self, stream, lines):
        for line in stream:
            with self.cond:
                lines.append(json.loads(line))
                self.cond.notify_all()

    def wait(self, pred, what):
        with self.cond:
            if not self.cond.wait_for(pred, DEADLINE_S):
                check(False, "timed out: " + what)
                raise TimeoutError(what)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def bodies(self):
        with self.cond:
            return [(e["id"], e.get("from"), e.get("body")) for e in self.out if e.get("type") == "chat"]

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.send("/quit")
                self.proc.stdin.close()
                return self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def browser(*extra):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1200,800", *extra]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def wait(d, cond, what, timeout=DEADLINE_S):
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda _: cond())
    except Exception:
        check(False, "timed out: " + what)
        raise


def login(d, base, user, pw, transport="ws"):
    d.get(base + "/?transport=" + transport)
    wait(d, lambda: d.find_element(By.ID, "user").is_displayed(), "login form")
    d.find_element(By.ID, "user").send_keys(user)
    d.find_element(By.ID, "password").send_keys(pw)
    d.find_element(By.ID, "login").click()
    wait(d, lambda: d.find_element(By.ID, "state").text == "connected", user + " connected")


def shown(d):
    """The chat lines shown: (id, from, body), in page order."""
    return d.execute_script("""return [...document.querySelectorAll('#messages li.chat[data-id]')]
        .map(li => [Number(li.dataset.id), li.querySelector('.from').textContent,
                    li.querySelector('.body').textContent]);""")


def send(d, body):
    d.execute_script("""const b = document.getElementById('body'); b.value = arguments[0];
        document.getElementById('send-form').requestSubmit();""", body)


def switch(d, kind):
    d.execute_script("window.chatApp.useTransport(arguments[0])", kind)
    wait(d, lambda: d.find_element(By.ID, "state").text == "connected", "connected on " + kind)


def once_in_order(lines, bodies, who):
    got = [b for (_, _, b) in lines if b in bodies]
    ids = [i for (i, _, _) in lines]
    check(ids == sorted(set(ids)), f"{who}: event ids strictly increasing, none twice ({len(ids)} lines)")
    check(got == bodies, f"{who}: each of {len(bodies)} messages once, in send order")


def test_chat(a, b, carol):
    """alice (browser, WebSocket), bob (browser, SSE) and carol (bin/chat, long poll)"""
    bodies = []
    for i in range(5):
        for d, who in ((a, "alice"), (b, "bob"), (carol, "carol")):
            body = f"{who} says {i}"
            bodies.append(body)
            # each sender sees its own message stored before the next is sent:
            # the send order is the id order
            if d is carol:
                carol.send(body)
                carol.wait(lambda: body in [x[2] for x in carol.bodies()], "carol's message stored")
            else:
                send(d, body)
                wait(d, lambda: body in [x[2] for x in shown(d)], "own message stored")
    for d, who in ((a, "alice"), (b, "bob")):
        wait(d, lambda: sum(1 for x in shown(d) if x[2] in bodies) >= len(bodies), who + " sees all")
        once_in_order(shown(d), bodies, "(a) " + who + " (browser)")
    once_in_order(carol.bodies(), bodies, "(a) carol (terminal, long poll)")


def test_transports(a, b):
    for kind in TRANSPORTS:                 # each transport alone
        switch(a, kind)
        body = "on " + kind
        send(b, body)
        wait(a, lambda: body in [x[2] for x in shown(a)], "alice receives on " + kind)
        send(a, "from alice on " + kind)
        wait(b, lambda: "from alice on " + kind in [x[2] for x in shown(b)], "alice sends on " + kind)
    check(True, "(b) every transport receives and sends")
    # bob keeps sending (one message every 60 ms, from his page) while
    # alice switches across all four, twice
    bodies = [f"stream {i}" for i in range(40)]
    b.execute_script("""const bodies = arguments[0]; let i = 0;
        const t = setInterval(() => {
          if (i >= bodies.length) return clearInterval(t);
          const b = document.getElementById('body'); b.value = bodies[i++];
          document.getElementById('send-form').requestSubmit();
        }, 60);""", bodies)
    for kind in TRANSPORTS + TRANSPORTS:
        before = sum(1 for x in shown(a) if x[2].startswith("stream "))
        switch(a, kind)
        if before < len(bodies):
            wait(a, lambda: sum(1 for x in shown(a) if x[2].startswith("stream ")) > before,
                 "alice receives after switching to " + kind)
    wait(a, lambda: sum(1 for x in shown(a) if x[2].startswith("stream ")) >= len(bodies), "all 40 arrive")
    once_in_order(shown(a), bodies, "(b) alice across 8 switches")
    once_in_order(shown(b), bodies, "(b) bob, the sender")


def test_xss(a, b):
    body = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    send(b, body)
    wait(a, lambda: body in [x[2] for x in shown(a)], "the HTML message arrives")
    check(a.execute_script("return document.querySelectorAll('#messages img, #messages script').length") == 0,
          "(c) the HTML is shown as text: no element made of it")
    check(a.execute_script("return window.pwned === undefined"), "(c) its handlers never ran")
    for d, who in ((a, "alice"), (b, "bob")):
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")
                or "Content Security Policy" in e["message"]]
        check(not logs, f"(c) {who}: no console errors, no CSP violations" + (f": {logs}" if logs else ""))


def balance(d):
    t = d.find_element(By.ID, "balance").text
    return round(float(t) * 100) if t[:1].isdigit() else None


def grant_notifications(d, base):
    """Allow desktop notifications (as the user's click would), and record
    those the page shows."""
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["notifications"]})
    d.execute_script("""window.shownNotes = [];
        const N = window.Notification;
        window.Notification = class extends N {
          constructor(title, opts) { super(title, opts); window.shownNotes.push(opts.body); } };""")


def test_transfer(a, b, base):
    for d in (a, b):
        grant_notifications(d, base)
    a0, b0 = balance(a), balance(b)
    a.find_element(By.ID, "to").send_keys("bob")
    a.find_element(By.ID, "amount").send_keys("12.34")
    a.find_element(By.CSS_SELECTOR, "#transfer-form button").click()
    toast = "return [...document.querySelectorAll('.toast')].map(t => t.textContent).join('|')"
    wait(a, lambda: "complete" in a.execute_script(toast), "alice's notification: completed")
    wait(b, lambda: "from alice" in b.execute_script(toast),
         "bob's notification: received")
    wait(a, lambda: balance(a) == a0 - 1234, f"alice's balance {a0} - 1234")
    wait(b, lambda: balance(b) == b0 + 1234, f"bob's balance {b0} + 1234")
    notes = "return window.shownNotes.join('|')"
    wait(a, lambda: "complete" in a.execute_script(notes), "alice's desktop notification")
    wait(b, lambda: "from alice" in b.execute_script(notes), "bob's desktop notification")
    check(True, f"(e) a transfer notifies both sides (in the page and on the desktop), "
                f"balances {a0}->{balance(a)}, {b0}->{balance(b)}")


def test_restart(a, b, chatd):
    for kind in TRANSPORTS:
        switch(a, kind)
        chatd.restart()
        body = "after a restart on " + kind
        send(b, body)                     # bob's page reconnects and sends it again if it must
        wait(a, lambda: body in [x[2] for x in shown(a)], "alice resumes on " + kind)
    once_in_order(shown(a), ["after a restart on " + k for k in TRANSPORTS], "(f) chatd restarted 4 times")


def test_lab(a, b, shots):
    a.get_log("browser")        # drop the restarts' expected "connection refused" lines
    a.get(a.current_url.split("/", 3)[0] + "//" + a.current_url.split("/", 3)[2] + "/lab.html")
    lanes = "return window.chatLab && Object.values(window.chatLab.lanes).map(l => [l.kind, l.state, l.meter.events, l.twice])"
    wait(a, lambda: (a.execute_script(lanes) or [[0, ""]])[0][1] and
         all(x[1] == "connected" for x in a.execute_script(lanes)), "the lab's four transports connected")
    a.find_element(By.ID, "gen-count").clear()
    a.find_element(By.ID, "gen-count").send_keys("30")
    a.find_element(By.ID, "gen-rate").clear()
    a.find_element(By.ID, "gen-rate").send_keys("20")
    a.find_element(By.CSS_SELECTOR, "#gen-form button").click()
    wait(a, lambda: all(x[2] >= 30 for x in a.execute_script(lanes)), "30 events on each of the four")
    wait(a, lambda: "30 sent" in a.find_element(By.ID, "gen-state").text, "the generator finished")
    got = a.execute_script(lanes)
    check(all(x[2] == 30 and x[3] == 0 for x in got),
          "(g) lab: the same 30 events on each transport, none twice: " +
          ", ".join(f"{k} {n}" for k, _, n, _ in got))
    if shots:
        a.execute_script("return new Promise(r => setTimeout(r, 300))")   # one more chart redraw (250 ms)
        a.save_screenshot(os.path.join(shots, "lab.png"))
    logs = [e for e in a.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    check(not logs, "(g) lab: no console errors" + (f": {logs}" if logs else ""))


def test_foreign(a, chatd, foreign):
    before = len(shown(a))
    a.get(foreign.url)                      # alice, with her cookie, on a foreign page
    wait(a, lambda: a.title == "done", "foreign page finished its attempts")
    r = a.execute_script("return window.results")
    check(not r["ws"].startswith("message"), f"(d) the foreign page's WebSocket got nothing: {r['ws']}")
    check(r["sse"] != "ready", f"(d) the foreign page's stream was refused: {r['sse']}")
    a.get(chatd.base + "/")                 # back home: the cookie still works here
    wait(a, lambda: a.find_element(By.ID, "state").text == "connected", "alice back home")
    send(a, "marker after the foreign page")
    wait(a, lambda: "marker after the foreign page" in [x[2] for x in shown(a)], "marker arrives")
    bodies = [x[2] for x in shown(a)]
    check("posted by a foreign page" not in bodies, "(d) the foreign page's POST stored nothing")
    with open(os.path.join(chatd.dir, "chatd.log")) as f:
        log = f.read()
    check("audit auth.origin_refused path=/api/v1/messages" in log, "(d) chatd refused the POST: 403")
    check("audit auth.origin_refused path=/api/v1/stream" in log, "(d) chatd refused the stream: 403")
    check("audit auth.origin_refused path=/api/v1/transfers" in log, "(d) chatd refused the transfer: 403")
    check("audit ws.origin_refused" in log, "(d) chatd refused the WebSocket handshake: 403")
    check(len(bodies) >= before, "(d) the page resumed its history")


def test_tls(binary, d):
    """The page over https:// and wss://: the cookie is Secure, and all four
    transports connect at once (over HTTP/2, Chromium's wss:// took ~5 s:
    chatd's TLS speaks HTTP/1.1 only, main.c)."""
    d.get_log("browser")        # drop the foreign page's expected refusals
    chatd = Chatd(binary, tls=True)
    try:
        check(http_json("POST", chatd.base + "/api/v1/register", {"user": "dave", "password": "password-dave"},
                        ctx=chatd.ctx)[0] == 201, "(h) TLS: register dave")
        login(d, chatd.base, "dave", "password-dave")
        # Path=/api/: not among the page's own cookies; ask the browser (DevTools) for the API's
        cookies = d.execute_cdp_cmd("Network.getCookies", {"urls": [chatd.base + "/api/v1/ws"]})["cookies"]
        cookie = next((c for c in cookies if c["name"] == "chat_session"), None)
        check(cookie and cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict",
              f"(h) TLS: the session cookie is Secure, HttpOnly, SameSite=Strict: {cookie and {k: cookie[k] for k in ('secure', 'httpOnly', 'sameSite')}}")
        for kind in TRANSPORTS:
            t0 = time.monotonic()
            switch(d, kind)
            took = time.monotonic() - t0
            check(took < 3, f"(h) TLS: {kind} connected in {took:.2f} s")
            body = "over TLS on " + kind
            send(d, body)
            wait(d, lambda: body in [x[2] for x in shown(d)], "TLS: own message on " + kind)
        once_in_order(shown(d), ["over TLS on " + k for k in TRANSPORTS], "(h) TLS: the four transports")
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        check(not logs, "(h) TLS: no console errors" + (f": {logs}" if logs else ""))
    finally:
        chatd.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chatd", default="bin/chatd")
    ap.add_argument("--chat", help="bin/chat (default: beside --chatd)")
    ap.add_argument("--screenshots", metavar="DIR", help="write screenshots of the pages there")
    args = ap.parse_args()
    started = time.monotonic()
    chatd = Chatd(args.chatd)
    foreign = Foreign(chatd.base)
    drivers = []
    carol = None
    try:
        for u in ("alice", "bob"):
            check(http_json("POST", chatd.base + "/api/v1/register",
                            {"user": u, "password": "password-" + u})[0] == 201, "register " + u)
        # the TLS run's throwaway CA is not in Chromium's store: its certificate is accepted as it is
        drivers = [browser("--ignore-certificate-errors"), browser("--ignore-certificate-errors")]
        a, b = drivers
        login(a, chatd.base, "alice", "password-alice")
        login(b, chatd.base, "bob", "password-bob", "sse")
        carol = Terminal(args.chat or os.path.join(os.path.dirname(args.chatd), "chat"), chatd.base,
                         "carol", "password-carol", "long-poll")
        carol.wait(lambda: any(e.get("state") == "connected" for e in carol.err), "carol connected")
        test_chat(a, b, carol)
        check(carol.quit() == 0, "carol quits cleanly (exit 0)")
        carol = None
        test_transports(a, b)
        test_xss(a, b)
        test_transfer(a, b, chatd.base)
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            a.save_screenshot(os.path.join(args.screenshots, "chat.png"))
        test_restart(a, b, chatd)
        test_lab(a, b, args.screenshots)
        test_foreign(a, chatd, foreign)
        test_tls(args.chatd, a)
    except Exception as e:          # a timeout already said what it waited for
        check(False, f"stopped by {type(e).__name__}: {e}".splitlines()[0])
    finally:
        for d in drivers:
            d.quit()
        if carol:
            carol.quit()
        foreign.stop()
        chatd.stop()
    took = time.monotonic() - started
    check(took < 60, f"browser tests took {took:.1f} s (limit 60)")
    print(f"browser: {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
