"""A real browser for the report's tests: headless Chromium driven over the DevTools Protocol.

`Browser()` starts ``chromium --headless=new`` on a free DevTools port (it writes the port to
DevToolsActivePort in its user-data-dir), connects one WebSocket to the browser endpoint and
opens one page, attached in flat mode so every command goes over that one socket. The page's
uncaught exceptions and console errors are collected in `errors`; tests assert it stays empty.

`png_size_and_colors` decodes a PNG (8-bit RGB or RGBA, what Chromium's screenshots are) with
zlib alone, to check that a screenshot is not blank. It is pure Python, a few hundred thousand
pixels a second: decode a screenshot taken with a small `scale`.
"""

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib

import pytest

CHROMIUM = "chromium"
MISSING = "chromium is not installed (apt-get install chromium)"


def require_browser():
    """Skip when there is no browser to test with; on CI, where it must be there, fail."""
    problems = []
    if shutil.which(CHROMIUM) is None:
        problems.append(MISSING)
    try:
        import websocket  # noqa: F401  (websocket-client)
    except ImportError:
        problems.append("websocket-client is not installed (pip install websocket-client)")
    if problems:
        if os.environ.get("CI"):
            pytest.fail("; ".join(problems) + ": CI must run the browser tests")
        pytest.skip("; ".join(problems))


def _browser_environment():
    """Our environment without the sanitizer run's preloads: they are for the tested Python,
    and the browser's launcher script cannot even start under them."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width=1280, height=900, timeout=20.0):
        import websocket

        self.timeout = timeout
        self.errors = []
        self.prompt_answers = []  # what to type into the page's next prompt() dialogs
        self._events = []
        self._next_id = 0
        self._profile_dir = tempfile.mkdtemp(prefix="etwtrace-chromium-")
        self._stderr = open(os.path.join(self._profile_dir, "stderr.log"), "wb")
        self._process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile_dir}", "--no-first-run", "--no-default-browser-check",
             "--disable-gpu", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             "--remote-allow-origins=*", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            env=_browser_environment(), start_new_session=True)  # its own process group: close() ends the wrapper's children too
        try:
            endpoint = self._wait_for_endpoint()
            self._socket = websocket.create_connection(endpoint, timeout=timeout, suppress_origin=True)
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.close()
            raise

    def _wait_for_endpoint(self):
        active_port = os.path.join(self._profile_dir, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}: {self._stderr_text()}")
            try:
                with open(active_port) as f:
                    lines = f.read().split()
            except FileNotFoundError:
                lines = []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port: {self._stderr_text()}")

    def _stderr_text(self):
        with open(os.path.join(self._profile_dir, "stderr.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-2000:]

    # -- the protocol ------------------------------------------------------------------------

    def send(self, method, params=None, session=False):
        """Send one command and return its result, keeping the events that arrive meanwhile."""
        expected = self._post(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == expected:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _post(self, method, params, session):
        """Send one command without waiting for its reply; its id."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        return self._next_id

    def _receive(self, deadline):
        if time.monotonic() > deadline:
            raise BrowserError("no reply from chromium in time")
        message = json.loads(self._socket.recv())
        if "method" in message:
            self._note_event(message)
        return message

    def _note_event(self, event):
        self._events.append(event)
        params = event.get("params", {})
        if event["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {description}")
        elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append("log: " + params["entry"].get("text", ""))
        elif event["method"] == "Page.javascriptDialogOpening":
            # Answered here: the page is blocked (and so may be the command that opened it).
            if params.get("type") == "prompt" and self.prompt_answers:
                answer = {"accept": True, "promptText": self.prompt_answers.pop(0)}
            else:
                self.errors.append(f"unexpected {params.get('type')} dialog: {params.get('message')}")
                answer = {"accept": False}
            self._post("Page.handleJavaScriptDialog", answer, session=True)

    def wait_for_event(self, method):
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    del self._events[i]
                    return event
            self._receive(deadline)

    # -- what tests use ------------------------------------------------------------------------

    def open(self, path):
        """Load a local file and wait for its load event."""
        self._events.clear()
        self.errors.clear()
        url = "file://" + os.path.abspath(path)
        result = self.send("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression):
        """The value of a JS expression in the page (promises awaited); JS errors raise."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def click(self, x, y):
        for kind, extra in (("mouseMoved", {}), ("mousePressed", {"button": "left", "clickCount": 1}),
                            ("mouseReleased", {"button": "left", "clickCount": 1})):
            self.send("Input.dispatchMouseEvent", dict({"type": kind, "x": x, "y": y}, **extra), session=True)

    def move(self, x, y):
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=True)

    def type_text(self, text):
        self.send("Input.insertText", {"text": text}, session=True)

    def press_key(self, key, code, key_code, modifiers=0):
        """modifiers: 2 is Ctrl."""
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "modifiers": modifiers,
                                                 "windowsVirtualKeyCode": key_code}, session=True)

    def screenshot(self, scale=1.0):
        """The viewport as PNG bytes; scaled down it decodes fast (see png_size_and_colors)."""
        params = {"format": "png"}
        if scale != 1.0:
            width, height = self.evaluate("[window.innerWidth, window.innerHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        return base64.b64decode(self.send("Page.captureScreenshot", params, session=True)["data"])

    def close(self):
        socket = getattr(self, "_socket", None)
        if socket is not None:
            try:
                socket.close()
            except Exception:
                pass
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)  # the group this Popen started
                self._process.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._process.wait(5)
        self._stderr.close()
        shutil.rmtree(self._profile_dir, ignore_errors=True)


def keep_screenshot(png, name):
    """Save `png` as NAME in $ETWTRACE_SCREENSHOT_DIR when it is set (the README's images)."""
    directory = os.environ.get("ETWTRACE_SCREENSHOT_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(png)


def png_size_and_colors(png):
    """(width, height, number of distinct pixel colours) of an 8-bit RGB/RGBA PNG."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, compressed, header = 8, [], None
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        body = png[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    width, height, bit_depth, color_type, _, _, interlace = header
    if bit_depth != 8 or color_type not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {bit_depth}, colour type {color_type}, interlace {interlace}")
    channels = 3 if color_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(b"".join(compressed))
    previous = bytearray(stride)
    colors = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                upper_left = previous[i - channels] if i >= channels else 0
                estimate = left + up - upper_left
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
                line[i] = (line[i] + (left, up, upper_left)[distances.index(min(distances))]) & 0xFF
        colors.update(bytes(line[i:i + channels]) for i in range(0, stride, channels))
        previous = line
    return width, height, len(colors)
