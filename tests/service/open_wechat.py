"""WeChat's open/* APIs faked in-process, as the proxy would hand their answers back.

The rules are those of protocol §8 (one binding per account, same principal, only accounts
made through the API, 100 a piece); the real mock proves them end to end. Here each test
can also lose an answer, before or after WeChat acted on the call.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from service.proxy import ProxyAnswer, ProxyCall, UpstreamError

LIMIT = 100


@dataclass
class Fault:
    """What happens to a matching call: ``answer`` (with ``http_status``) replaces WeChat's
    answer, ``lost`` drops it, ``unsent``: the connection was never made. ``processed``:
    WeChat acted on the call before its answer was replaced or lost. The first ``skip``
    matching calls pass untouched, then ``times`` are hit."""

    api: str
    answer: dict[str, Any] | None = None
    http_status: int = 200
    lost: bool = False
    processed: bool = False
    unsent: bool = False
    skip: int = 0
    times: int = 1


@dataclass
class FakeOpenWeChat:
    principals: dict[str, str] = field(default_factory=dict)  # appid -> principal
    granted: dict[tuple[str, str], bool] = field(default_factory=dict)  # (component, appid)
    bound: dict[str, str] = field(default_factory=dict)  # appid -> open_appid
    opens: dict[str, tuple[str, bool]] = field(default_factory=dict)  # -> principal, via API
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (api, component, appid)
    latency: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def account(
        self, appid: str, principal: str = "示例科技有限公司", components: tuple[str, ...] = ()
    ) -> str:
        self.principals[appid] = principal
        for component in components:
            self.granted[(component, appid)] = True
        return appid

    def website_account(self, principal: str, *appids: str) -> str:
        """An open platform account made on open.weixin.qq.com (the API may not touch it)."""
        open_appid = self._new_open(principal, via_api=False)
        for appid in appids:
            self.bound[appid] = open_appid
        return open_appid

    def api_calls(self, api: str) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] == api]

    # ----- Forwarder -------------------------------------------------------------------

    def forward(self, component_appid: str, appid: str, call: ProxyCall) -> ProxyAnswer:
        api = call.path.removeprefix("cgi-bin/")
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
            return self._forward(component_appid, appid, api, json.loads(call.body))
        finally:
            with self._lock:
                self.in_flight -= 1

    def _forward(self, component: str, appid: str, api: str, body: dict[str, Any]) -> ProxyAnswer:
        with self._lock:
            fault = self._take_fault(api)
            if fault is None:
                self.calls.append((api, component, appid))
                return _answer(self._process(component, appid, api, body))
            if fault.unsent:
                raise UpstreamError(502, "could not connect to WeChat (timeout)", reached=False)
            self.calls.append((api, component, appid))
            if fault.processed:
                self._process(component, appid, api, body)
            if fault.lost:
                raise UpstreamError(504, "WeChat did not answer within 15 s")
            assert fault.answer is not None, fault
            return _answer(fault.answer, fault.http_status)

    def _take_fault(self, api: str) -> Fault | None:
        for fault in self.faults:
            if fault.api != api or fault.times <= 0:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.times -= 1
            return fault
        return None

    def _process(
        self, component: str, appid: str, api: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if not self.granted.get((component, appid)):
            return {"errcode": 61007, "errmsg": "api is unauthorized to component"}
        if body.get("appid") not in (None, appid):
            return {"errcode": 40013, "errmsg": "invalid appid"}
        principal = self.principals[appid]
        if api == "open/get":
            if appid not in self.bound:
                return {"errcode": 89002, "errmsg": "open not exists"}
            return {"errcode": 0, "errmsg": "ok", "open_appid": self.bound[appid]}
        if api == "open/create":
            if appid in self.bound:
                return {"errcode": 89000, "errmsg": "account has bound open"}
            self.bound[appid] = self._new_open(principal, via_api=True)
            return {"errcode": 0, "errmsg": "ok", "open_appid": self.bound[appid]}
        open_appid = body.get("open_appid")
        if open_appid not in self.opens:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        owner, via_api = self.opens[open_appid]
        if api == "open/bind":
            if appid in self.bound:
                return {"errcode": 89000, "errmsg": "account has bound open"}
            if not via_api:
                return {"errcode": 89003, "errmsg": "open is not created by api"}
            if owner != principal:
                return {"errcode": 89001, "errmsg": "not same contractor"}
            if sum(1 for o in self.bound.values() if o == open_appid) >= LIMIT:
                return {"errcode": 89004, "errmsg": "reaches the limit"}
            self.bound[appid] = open_appid
            return {"errcode": 0, "errmsg": "ok"}
        assert api == "open/unbind", api
        if not via_api:
            return {"errcode": 89003, "errmsg": "open is not created by api"}
        if self.bound.get(appid) != open_appid:
            return {"errcode": 89002, "errmsg": "open not exists"}
        del self.bound[appid]
        return {"errcode": 0, "errmsg": "ok"}

    def _new_open(self, principal: str, via_api: bool) -> str:
        open_appid = f"wx{next(self._numbers):016x}"
        self.opens[open_appid] = (principal, via_api)
        return open_appid


def _answer(data: dict[str, Any], status: int = 200) -> ProxyAnswer:
    errcode = data.get("errcode")
    return ProxyAnswer(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
        errcode=errcode if isinstance(errcode, int) else None,
    )
