"""Play the merchant headlessly through the real pages: ``python -m mock_wechat authorize``.

It does what a person does in a browser: open the service's entry page, follow its PC
or H5 link to WeChat's (the mock's) authorization page with the entry page as Referer,
"scan" as the account's admin, pick the account, keep or untick permission sets, confirm,
and follow the redirect to the service's callback, whose result it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import requests

DEFAULT_TIMEOUT = 15.0


class MerchantError(RuntimeError):
    """A step failed; the text says which step and what the page said."""


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Page:
    """The elements of an HTML page that the merchant looks at."""

    url: str
    status: int
    elements: list[Element] = field(default_factory=list)

    def by_id(self, ident: str) -> Element | None:
        return next((e for e in self.elements if e.attrs.get("id") == ident), None)

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def with_class(self, tag: str, css_class: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and css_class in e.attrs.get("class", "").split()
        ]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in ("input", "img", "br", "meta", "link"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def parse_page(url: str, status: int, html: str) -> Page:
    collector = _Collector()
    collector.feed(html)
    return Page(url, status, collector.elements)


@dataclass(frozen=True)
class Result:
    outcome: str
    title: str
    nick_name: str | None
    account_type: str | None
    permission_sets: list[str]
    callback_url: str

    def describe(self) -> str:
        lines = [f"outcome: {self.outcome}", f"page: {self.title}"]
        if self.nick_name is not None:
            lines += [
                f"account: {self.nick_name}",
                f"type: {self.account_type}",
                "permission sets: " + ", ".join(self.permission_sets),
            ]
        return "\n".join(lines)


class Merchant:
    def __init__(self, mock_url: str, session: requests.Session | None = None) -> None:
        self.mock_url = mock_url.rstrip("/")
        self.session = session or requests.Session()

    def _get(self, url: str, referer: str | None = None) -> Page:
        headers = {"Referer": referer} if referer else {}
        response = self.session.get(url, headers=headers, timeout=DEFAULT_TIMEOUT)
        return parse_page(response.url, response.status_code, response.text)

    def admin_of(self, account: str) -> str:
        response = self.session.get(
            f"{self.mock_url}/_mock/accounts/{account}", timeout=DEFAULT_TIMEOUT
        )
        if response.status_code != 200:
            raise MerchantError(f"mock has no account {account} ({response.status_code})")
        admin = response.json().get("admin")
        if not isinstance(admin, str):
            raise MerchantError(f"account {account} has no admin on the mock")
        return admin

    def authorize(
        self,
        service_url: str,
        component: str,
        account: str,
        auth_type: int = 3,
        page: str = "pc",
        admin: str | None = None,
        keep_categories: list[int] | None = None,
        deny: bool = False,
        biz_appid: str | None = None,
    ) -> Result:
        query: dict[str, str | int] = {"auth_type": auth_type}
        if biz_appid:
            query["biz_appid"] = biz_appid
        entry_url = f"{service_url.rstrip('/')}/authorize/{component}?" + urlencode(query)
        entry = self._get(entry_url)
        link = entry.by_id(f"{page}-link")
        if entry.status != 200 or link is None:
            raise MerchantError(f"entry page {entry_url}: {entry.status} {_reason(entry)}")
        # A browser following the link sends the entry page's origin as Referer (§4.3).
        parts = urlsplit(entry.url)
        auth_page = self._get(link.attrs["href"], referer=f"{parts.scheme}://{parts.netloc}/")
        _check(auth_page, "authorization page")
        scan = auth_page.by_id("scan-form")
        session_input = next(
            (e for e in auth_page.all("input") if e.attrs.get("name") == "session"), None
        )
        if scan is None or session_input is None:
            raise MerchantError("authorization page has no scan form")
        scan_query = {
            "session": session_input.attrs["value"],
            "admin": admin or self.admin_of(account),
        }
        listing_url = (
            urljoin(auth_page.url, scan.attrs.get("action", "")) + "?" + urlencode(scan_query)
        )
        listing = self._get(listing_url)
        _check(listing, "account list")
        choice = next(
            (a for a in listing.with_class("a", "account") if a.attrs.get("data-appid") == account),
            None,
        )
        if choice is None:
            listed = [a.attrs.get("data-appid", "?") for a in listing.with_class("a", "account")]
            raise MerchantError(
                f"account {account} is not listed for this admin and auth_type (listed: {listed})"
            )
        form_page = self._get(urljoin(listing.url, choice.attrs["href"]))
        _check(form_page, "permission sets page")
        return self._submit(form_page, keep_categories, deny)

    def _submit(self, page: Page, keep: list[int] | None, deny: bool) -> Result:
        form = page.by_id("confirm-form")
        if form is None:
            raise MerchantError("permission sets page has no confirm form")
        data: list[tuple[str, str]] = []
        for field_input in page.all("input"):
            name, value = field_input.attrs.get("name", ""), field_input.attrs.get("value", "")
            kind = field_input.attrs.get("type", "text")
            if kind == "checkbox":
                wanted = "checked" in field_input.attrs if keep is None else int(value) in keep
                if wanted:
                    data.append((name, value))
            elif name:
                data.append((name, value))
        data.append(("decision", "deny" if deny else "confirm"))
        action = urljoin(page.url, form.attrs.get("action", ""))
        response = self.session.post(
            action, data=data, allow_redirects=False, timeout=DEFAULT_TIMEOUT
        )
        if response.status_code != 302:
            confirm_page = parse_page(action, response.status_code, response.text)
            raise MerchantError(f"confirm: {response.status_code} {_reason(confirm_page)}")
        callback = self._get(response.headers["Location"])
        main = next((e for e in callback.elements if e.tag == "main"), None)
        title = callback.by_id("title")
        nick, account_type = callback.by_id("nick-name"), callback.by_id("account-type")
        sets = [e.text.strip() for e in callback.elements if e.tag == "li" and "data-id" in e.attrs]
        return Result(
            outcome=main.attrs.get("data-outcome", "?") if main else "?",
            title=title.text.strip() if title else "",
            nick_name=nick.text.strip() if nick else None,
            account_type=account_type.text.strip() if account_type else None,
            permission_sets=sets,
            callback_url=callback.url,
        )


def _reason(page: Page) -> str:
    for ident in ("wx-error", "reason"):
        element = page.by_id(ident)
        if element is not None:
            return element.text.strip()
    return ""


def _check(page: Page, step: str) -> None:
    error = page.by_id("wx-error")
    if error is not None or page.status != 200:
        code = error.attrs.get("data-error", "") if error else ""
        raise MerchantError(f"{step}: {page.status} [{code}] {_reason(page)}")
