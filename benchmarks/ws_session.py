"""A Streamlit session without a browser: the websocket protocol a tab speaks, for load tests.

A class's tabs each run in a student's own browser, on the student's own machine; what they cost the
shared server is their websocket traffic: one script run when the tab opens, then every fragment rerun
the page asks for (`st.fragment(run_every=...)` sends an `auto_rerun` message; the browser's timer then
asks for the fragment's rerun). `WsSession` does exactly that and renders nothing, so a load test on one
2-core machine measures the server, not 30 Chromium renderers competing with it.

Protocol (Streamlit 1.67, `streamlit/proto`): the client connects to `/_stcore/stream` with the
"streamlit" subprotocol and sends `BackMsg(rerun_script=ClientState(page_name=..., query_string=...))`;
the server answers with ForwardMsgs (`new_session`, deltas, `auto_rerun`, `script_finished`).
"""
from __future__ import annotations

import asyncio
import time

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


class WsSession:
    """One tab's websocket: open a page, then keep every fragment's auto-rerun timer going until closed."""

    def __init__(self, port: int, page_name: str, query_string: str = ""):
        self.url = f"ws://127.0.0.1:{port}/_stcore/stream"
        self.page_name, self.query_string = page_name, query_string
        self.page_script_hash = ""
        self.ready_s: float | None = None  # seconds from connect to the first finished script run
        self.reruns = 0  # fragment reruns the server finished for this session
        self.exceptions = 0  # deltas that carry an st.exception
        self.elements: set[str] = set()  # the kinds of element the server sent (e.g. "progress", "metric")
        self.error: str | None = None
        self._timers: dict[str, asyncio.Task] = {}
        self._ws = None

    def _rerun_msg(self, fragment_id: str = "") -> bytes:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_name = self.query_string, self.page_name
        cs.page_script_hash = self.page_script_hash
        if fragment_id:
            cs.fragment_id, cs.is_auto_rerun = fragment_id, True
        return msg.SerializeToString()

    async def _auto_rerun(self, interval: float, fragment_id: str) -> None:
        while True:  # like the browser's setInterval
            await asyncio.sleep(interval)
            await self._ws.send(self._rerun_msg(fragment_id))

    def _on(self, fm: ForwardMsg, t0: float) -> None:
        kind = fm.WhichOneof("type")
        if kind == "new_session":
            self.page_script_hash = fm.new_session.page_script_hash
        elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            element = fm.delta.new_element.WhichOneof("type")
            self.elements.add(element)
            self.exceptions += element == "exception"
        elif kind == "auto_rerun":
            fid = fm.auto_rerun.fragment_id
            if fid not in self._timers:
                self._timers[fid] = asyncio.create_task(self._auto_rerun(fm.auto_rerun.interval, fid))
        elif kind == "script_finished" and fm.script_finished in FINISHED:
            if self.ready_s is None:
                self.ready_s = time.perf_counter() - t0
            elif fm.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                self.reruns += 1

    async def run(self, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None,
                  timeout_s: float = 240) -> None:
        """Connect, open the page, follow its fragments until `stop` is set; `ready` is set once it is."""
        import websockets

        t0 = time.perf_counter()
        try:
            async with websockets.connect(self.url, subprotocols=["streamlit"], max_size=None,
                                          open_timeout=timeout_s) as ws:
                self._ws = ws
                await ws.send(self._rerun_msg())
                stop = stop or asyncio.Event()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except asyncio.TimeoutError:
                        if self.ready_s is None and time.perf_counter() - t0 > timeout_s:
                            raise TimeoutError(f"no finished script run within {timeout_s:.0f} s") from None
                        continue
                    fm = ForwardMsg()
                    fm.ParseFromString(raw)
                    was_ready = self.ready_s is not None
                    self._on(fm, t0)
                    if ready is not None and not was_ready and self.ready_s is not None:
                        ready.set()
        except Exception as e:  # noqa: BLE001 - a session that fails is the result
            self.error = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        finally:
            for task in self._timers.values():
                task.cancel()
            if ready is not None:
                ready.set()
