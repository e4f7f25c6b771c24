"""A Streamlit session without a browser: the websocket protocol the browser speaks, for load tests.

The browser and a Streamlit server talk over one websocket (``/_stcore/stream``, subprotocol
``streamlit``) in protobufs that ship with streamlit: the browser sends ``BackMsg``s (chiefly
``rerun_script``, a ``ClientState`` with every widget's value and, for a widget inside a
fragment, that fragment's id), the server answers each run with ``ForwardMsg``s (``new_session``
when a run starts, one ``delta`` per element, ``script_finished`` at the end). This client sends
what a browser sends and reads the elements as they arrive, so a benchmark can time an answer the
moment it reaches the client, with about 5 % of a core for 40 sessions instead of a Chromium each.

What a browser does that this client copies: the first run with an empty page hash, every later
run with the page hash the server named; every widget value it holds sent with every run, and the
values of widgets that a full run no longer draws forgotten (Clear mounts a new canvas);
a button press as a one-off ``trigger_value``; the hashes of cacheable messages it has received
sent back, so the server sends references to them rather than the messages again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

RUN_ENDED = ForwardMsg.ScriptFinishedStatus  # FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT_RUN_SUCCESSFULLY, ...


@dataclass
class Element:
    """One element a run drew: its type, the element proto, the fragment it belongs to, when it arrived."""

    kind: str  # "metric", "button", "alert", "bidi_component", ...
    proto: Any
    fragment_id: str
    at: float  # time.perf_counter() on arrival


@dataclass
class Run:
    """What the server sent for one script run, in order of arrival."""

    started: float
    elements: list[Element] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None  # a RUN_ENDED value once finished

    def find(self, test: Callable[[Element], bool]) -> Element | None:
        return next((e for e in self.elements if test(e)), None)


class Session:
    """One browser tab's worth of Streamlit session over a websocket.

    ``await Session.open(url)`` connects and runs the page once; ``rerun()`` sends the held widget
    values (plus one-off triggers) and returns the new ``Run`` as soon as the server starts it;
    ``wait_for(run, test)`` waits for an element of that run.
    """

    def __init__(self, url: str, connection: Any) -> None:
        self.url = url
        self._ws = connection
        self._values: dict[str, WidgetState] = {}  # widget id -> the value this client set
        self._drawn: dict[str, Element] = {}  # widget id -> the widget as last drawn
        self._cached: dict[str, ForwardMsg] = {}
        self._page_hash = ""
        self._run: Run | None = None
        self._requested: list[asyncio.Future[Run]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed_reason: str | None = None

    @classmethod
    async def open(cls, url: str, *, timeout: float = 180.0) -> Session:
        """Connect to the app at ``url`` (``http://host:port``) and wait for its first run to end."""
        ws_url = url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        connection = await websockets.connect(ws_url, subprotocols=["streamlit"], origin=url, max_size=None,
                                              compression=None, open_timeout=timeout)
        session = cls(url, connection)
        run = await session.rerun()
        await asyncio.wait_for(run.finished.wait(), timeout)
        return session

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()

    # -- what the page shows ----------------------------------------------------------------------

    @property
    def last_run(self) -> Run | None:
        return self._run

    def widget(self, test: Callable[[str, Element], bool]) -> Element | None:
        """A widget on the page (as last drawn) for which ``test(id, element)`` holds; ids end in
        ``-<key>`` for widgets with a key."""
        return next((e for i, e in self._drawn.items() if test(i, e)), None)

    # -- what the browser sends -------------------------------------------------------------------

    def set_json(self, widget_id: str, value: str) -> None:
        self._values[widget_id] = WidgetState(id=widget_id, json_value=value)

    async def rerun(self, *, trigger: str | None = None, fragment_id: str = "") -> Run:
        """Send a ``rerun_script`` (pressing the button ``trigger`` if given) and return its run once
        the server has started it."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self._page_hash
        state.fragment_id = fragment_id
        state.cached_message_hashes.extend(self._cached)
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale, info.url = "UTC", 0, "en-US", self.url + "/"
        info.is_embedded, info.color_scheme = False, "dark"
        state.widget_states.widgets.extend(self._values.values())
        if trigger is not None:
            state.widget_states.widgets.append(WidgetState(id=trigger, trigger_value=True))
        started: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._requested.append(started)
        await self._ws.send(msg.SerializeToString())
        return await started

    # -- what the server sends --------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self._receive(frame)
        except websockets.ConnectionClosed as e:
            self.closed_reason = f"websocket closed: {e}"
        finally:
            if self._run is not None:
                self._run.finished.set()
            for waiting in self._requested:
                if not waiting.done():
                    waiting.set_exception(ConnectionError(self.closed_reason or "websocket closed"))

    def _receive(self, frame: bytes) -> None:
        now = time.perf_counter()
        msg = ForwardMsg()
        msg.ParseFromString(frame)
        if msg.WhichOneof("type") == "ref_hash":
            msg = self._cached[msg.ref_hash]
        elif msg.metadata.cacheable:
            self._cached[msg.hash] = msg
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self._page_hash = msg.new_session.page_script_hash
            self._run = Run(started=now)
            if self._requested:
                self._requested.pop(0).set_result(self._run)
        elif kind == "delta" and self._run is not None and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            which = element.WhichOneof("type")
            proto = getattr(element, which)
            drawn = Element(which, proto, msg.delta.fragment_id, now)
            self._run.elements.append(drawn)
            if getattr(proto, "id", ""):
                self._drawn[proto.id] = drawn
        elif kind == "script_finished" and self._run is not None:
            self._run.status = msg.script_finished
            if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self._forget_unmounted(self._run)
            self._run.finished.set()
        self._changed.set()

    def _forget_unmounted(self, run: Run) -> None:
        """A full run that no longer draws a widget drops it and its value, as the browser does."""
        drawn = {getattr(e.proto, "id", "") for e in run.elements}
        self._values = {i: v for i, v in self._values.items() if i in drawn}
        self._drawn = {i: e for i, e in self._drawn.items() if i in drawn}

    async def wait_for(self, run: Run, test: Callable[[Element], bool], *, timeout: float) -> Element | None:
        """The first element of ``run`` that passes ``test``, once it has arrived; None when the
        run ends without one or ``timeout`` seconds pass."""
        deadline = time.perf_counter() + timeout
        seen = 0
        while True:
            for element in run.elements[seen:]:
                if test(element):
                    return element
            seen = len(run.elements)
            if run.finished.is_set() or self._run is not run:
                return None
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return None
