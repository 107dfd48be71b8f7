"""docs/quickstart.md, followed word for word against ``headwater demo``: every output the page
shows is compared exactly with what a user gets.

The test starts the demo as ``make demo`` does (``headwater demo``, in a scratch folder that
stands for the repository, on a free port instead of 8080), then walks the page in order:

* "Before you start": the demo's banner is the page's ``text`` block.
* "1. In the console": the console is driven over HTTP as a browser would (sign in, follow the
  links the page names, submit the *Remove* form). Every Markdown table of the section is
  compared with the page table that has those column headers: every row, in order, in the
  columns the page shows. Every ``text`` block is compared with the lines of the element it
  transcribes (an *Explain* list, the plan). Then its ``sh`` block runs (with a
  ``.venv/bin/headwater`` that runs this Python) and prints exactly the next ``text`` block.
* "2. With curl": the page's SCIM server command runs (on a free port instead of 8181), then
  its ``sh`` blocks run as written, in one bash, with only the variables the page documents
  set (BASE and SCIM_URL for the ports, TOKEN from the demo; SCIM_TOKEN keeps its default).
  What each block prints is exactly the ``text`` blocks between it and the next ``sh`` block
  (none means it prints nothing), nothing goes to stderr, and the downstream ends as the page
  says.

Values that differ on every run are normalised explicitly, in the page and in the output alike
(``VARYING``): ids, downstream ids, times, the password, the token, the downstream's port, the
repository's path, worker ids, and the widths of rich's tables. The demo's own port is the
page's 8080.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from headwater.testing.scimserver import free_port
from headwater.testing.slapd import slapd_missing
from headwater.testing.toolkit import Demo, clean_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the demo kit reads /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart.md"
BEFORE = "## Before you start"
CONSOLE = "## 1. In the console"
CURL = "## 2. With curl"
DOC_VARIABLES = ("BASE", "TOKEN", "SCIM_URL", "SCIM_TOKEN")
DOC_PORT = 8080
CONVERGE_SECONDS = 30.0

# --- What differs on every run ---------------------------------------------------------------

VARYING: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b00u[0-9A-Za-z]{17}\b"), "<user id>"),
    (re.compile(r"\b00g[0-9A-Za-z]{17}\b"), "<group id>"),
    (re.compile(r"\bgPm[0-9A-Za-z]{17}\b"), "<mapping id>"),
    # scim2-server's resource ids
    (re.compile(r"\b[0-9a-f]{32}\b"), "<downstream id>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b"), "<time>"),
    (re.compile(r"(\(user: admin, password: )[A-Za-z0-9_-]+\)"), r"\1<password>)"),
    (re.compile(r"(Your API token \(shown once\):\n)00[A-Za-z0-9_-]{40}$", re.M), r"\1<token>"),
    (re.compile(r"(Downstream app: http://127\.0\.0\.1:)\d+/"), r"\1<port>/"),
    (re.compile(r"(LDAP directory: ldap://127\.0\.0\.1:)\d+ "), r"\1<port> "),
    (re.compile(r"(dc=example,dc=org, password: )[A-Za-z0-9_-]+\)"), r"\1<password>)"),
    # Where slapd is not installed, the demo says so on that line instead (the page says so too).
    (
        re.compile(r"(  LDAP directory: )not started \(.*\)"),
        r"\1ldap://127.0.0.1:<port>  (OpenLDAP slapd; bind DN: cn=admin,dc=example,dc=org,"
        r" password: <password>)",
    ),
    (
        re.compile(r"sqlite:////\S*/data/demo/headwater\.db"),
        "sqlite:///<repo>/data/demo/headwater.db",
    ),
    # a worker's id: host:pid:object id, in the rule of a rich table
    (re.compile(r"(?<=│ )[^\s│]+:\d+:[0-9a-f]+(?= )"), "<worker>"),
]
BOX = re.compile(r"[┏┓┗┛┃┡┩┳╇│└┘┴─━]")


def normalise(text: str) -> str:
    """``text`` with every value in ``VARYING`` replaced by its placeholder. In rich tables,
    whose widths follow the terminal and the values, runs of spaces or of rule characters
    count as one, and a table's title is compared without its centring."""
    for pattern, placeholder in VARYING:
        text = pattern.sub(placeholder, text)
    lines = [line.rstrip() for line in text.split("\n")]
    for index, line in enumerate(lines):
        if BOX.search(line):
            line = re.sub(r"━+", "━", re.sub(r"─+", "─", re.sub(r" +", " ", line)))
            lines[index] = line.strip()
        elif index + 1 < len(lines) and lines[index + 1].lstrip().startswith("┏"):
            lines[index] = line.strip()
    return "\n".join(lines)


def assert_same(expected: str, actual: str, what: str) -> None:
    want, got = normalise(expected), normalise(actual)
    assert got == want, f"{what}: the page says\n{want}\n--- but the output is\n{got}"


# --- The page ----------------------------------------------------------------------------------

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
TABLE_LINE = re.compile(r"^ *\|.*\| *$")


@dataclass
class Block:
    """A fenced block (``lang`` and its text) or a Markdown table (``lang`` is ``table``)."""

    lang: str
    body: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end != -1 else None]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(text: str) -> list[Block]:
    tables, lines = [], text.split("\n")
    index = 0
    while index < len(lines):
        if TABLE_LINE.match(lines[index]):
            start = index
            while index < len(lines) and TABLE_LINE.match(lines[index]):
                index += 1
            header, rule, *rows = lines[start:index]
            assert set(rule.replace("|", "").strip()) <= {"-", ":", " "}, rule
            tables.append(Block("table", headers=_cells(header), rows=[_cells(r) for r in rows]))
        index += 1
    return tables


def blocks(title: str) -> list[Block]:
    """The section's fenced blocks and tables, in the page's order."""
    text, found, position = section(title), [], 0
    for fence in FENCE.finditer(text):
        found += _tables(text[position : fence.start()])
        indent = len(fence["indent"])
        body = "".join(line[indent:] for line in fence["body"].splitlines(keepends=True))
        found.append(Block(fence["lang"], body))
        position = fence.end()
    return found + _tables(text[position:])


def sh_blocks(title: str) -> list[str]:
    return [block.body for block in blocks(title) if block.lang == "sh"]


# --- The console, as a browser without JavaScript sees it --------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.walk()
            if node.tag == tag and all(node.attrs.get(k) == v for k, v in attrs.items())
        ]

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()

    def text(self) -> str:
        """The text, whitespace collapsed, as one line."""
        return " ".join(" ".join(self.lines()).split())

    def lines(self) -> list[str]:
        """The text as a browser lays it out: block elements start new lines."""
        parts: list[str] = []

        def visit(node: Node) -> None:
            if node.tag in ("script", "style", "template"):
                return
            block = node.tag in BLOCK_TAGS
            if block:
                parts.append("\n")
            for child in node.children:
                if isinstance(child, str):
                    parts.append(child)
                else:
                    visit(child)
            if block:
                parts.append("\n")

        visit(self)
        lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
        return [line for line in lines if line]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("option", "li", "tr", "td", "th", "p") and self.stack[-1].tag == tag:
            self.stack.pop()  # implied end tags
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    nodes: list[list[Node]]


@dataclass
class Page:
    url: str
    root: Node

    def link(self, text: str, within: Node | None = None) -> str:
        """The one address that links named ``text`` lead to."""
        found = {a.attrs["href"] for a in (within or self.root).find_all("a") if a.text() == text}
        assert len(found) == 1, f"{self.url}: links named {text!r}: {sorted(found)}"
        return urljoin(self.url, found.pop())

    def tables(self) -> list[Table]:
        tables = []
        for table in self.root.find_all("table"):
            headers = [th.text() for th in table.find_all("th")]
            bodies = table.find_all("tbody") or [table]
            rows = [tr for body in bodies for tr in body.find_all("tr") if not tr.find_all("th")]
            cells = [[td for td in tr.find_all("td")] for tr in rows]
            tables.append(Table(headers, [[td.text() for td in row] for row in cells], cells))
        return tables

    def table_with(self, headers: list[str]) -> Table:
        found = [t for t in self.tables() if set(headers) <= set(t.headers)]
        assert len(found) == 1, f"{self.url}: {len(found)} tables with columns {headers}"
        return found[0]

    def by_class(self, name: str) -> Node:
        (node,) = [n for n in self.root.walk() if n.has_class(name)]
        return node


class Console:
    """The admin console over HTTP: sign in, open pages, follow links, submit forms."""

    def __init__(self, base: str, password: str) -> None:
        self.client = httpx.Client(base_url=base, follow_redirects=True, timeout=30)
        login = self.get("/console/login")
        page = self.submit(login, "Sign in", username="admin", password=password)
        assert page.url.endswith("/console/people"), page.url

    def get(self, url: str) -> Page:
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        return self._page(response)

    def follow(self, page: Page, text: str, within: Node | None = None) -> Page:
        return self.get(page.link(text, within))

    def submit(self, page: Page, button: str, **values: str) -> Page:
        """Submit the form of the button whose label (or accessible name) is ``button``."""
        forms = [
            form
            for form in page.root.find_all("form")
            for b in form.find_all("button")
            if button in (b.text(), b.attrs.get("aria-label"))
        ]
        assert len(forms) == 1, f"{page.url}: {len(forms)} forms with a button {button!r}"
        form = forms[0]
        data = {i.attrs["name"]: i.attrs.get("value", "") for i in form.find_all("input")}
        data.update(values)
        action = urljoin(page.url, form.attrs.get("action", page.url))
        response = self.client.post(action, data=data)
        assert response.status_code == 200, (action, response.status_code, response.text[:500])
        return self._page(response)

    @staticmethod
    def _page(response: httpx.Response) -> Page:
        builder = _TreeBuilder()
        builder.feed(response.text)
        return Page(str(response.url), builder.root)

    def close(self) -> None:
        self.client.close()


def assert_table(page: Page, block: Block, what: str) -> None:
    """Every row of the page's table with the block's columns, exactly, in order."""
    assert block.lang == "table", (what, block)
    table = page.table_with(block.headers)
    columns = [table.headers.index(header) for header in block.headers]
    shown = [" | ".join(row[c] for c in columns) for row in table.rows]
    expected = [" | ".join(row) for row in block.rows]
    if slapd_missing() is not None:
        # The demo's LDAP Directory app exists only where slapd is installed (the page says so).
        expected = [row for row in expected if not row.startswith("LDAP Directory ")]
    assert_same("\n".join(expected), "\n".join(shown), f"{what} ({page.url})")


def assert_lines(lines: list[str], block: Block, what: str) -> None:
    assert block.lang == "text", (what, block)
    assert_same(block.body, "\n".join(lines) + "\n", what)


def explain(page: Page, app: str) -> list[str]:
    """The *Explain* list of the row of ``app`` in a person's applications table."""
    table = page.table_with(["App", "Why"])
    (row,) = [cells for cells in table.nodes if cells[0].text() == app]
    (details,) = row[table.headers.index("Why")].find_all("details")
    return [li.text() for li in details.find_all("li")]


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CONVERGE_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def nothing_pending(console: Console) -> bool:
    """The Health page's Pending keys column: the worker has done everything asked of it."""
    health = console.get("/console/health").table_with(["Application", "Pending keys"])
    column = health.headers.index("Pending keys")
    return all(row[column] == "0" for row in health.rows)


# --- The walk ------------------------------------------------------------------------------------


def fake_venv(folder: Path) -> None:
    """``.venv/bin/headwater`` in the demo's folder, running the ``headwater`` under test."""
    script = folder / ".venv" / "bin" / "headwater"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m headwater "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = cwd / f"quickstart-{secrets.token_hex(4)}.sh"
    path.write_text(script)
    return subprocess.run(
        ["bash", "-euo", "pipefail", str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def before_you_start(demo: Demo) -> None:
    (make, banner) = blocks(BEFORE)
    assert (make.lang, make.body) == ("sh", "make demo\n")
    demo_recipe = re.search(r"^demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert demo_recipe is not None and demo_recipe[1] == "$(BIN)/headwater demo"
    # The demo listens on the page's port, 8080, unless told otherwise (the test must be).
    shown = demo.output.replace(f"127.0.0.1:{demo.port}", f"127.0.0.1:{DOC_PORT}")
    assert banner.lang == "text"
    assert_same(banner.body, shown, "the banner of make demo")


def in_the_console(demo: Demo) -> None:
    page = blocks(CONSOLE)
    (cli,) = [n for n, b in enumerate(page) if b.lang == "sh"]
    it = iter(page[:cli])
    console = Console(demo.base, demo.password)
    try:
        wait_until(lambda: nothing_pending(console), "the example to be applied downstream")
        home = console.get("/console/people")

        # 1. Applications -> Demo SCIM App -> Assignments.
        app = console.follow(console.follow(home, "Applications"), "Demo SCIM App")
        assignments = console.follow(app, "Assignments")
        assert_table(assignments, next(it), "1. the assigned groups")
        assert_table(assignments, next(it), "1. the people with an account")
        # 2. Push Groups tab.
        push_groups = console.follow(assignments, "Push Groups")
        assert_table(push_groups, next(it), "2. the pushed groups")
        # 3. People -> Taylor Smith: in both groups; the account and why.
        taylor = console.follow(console.follow(home, "People"), "Taylor Smith")
        chips = [n for n in taylor.root.walk() if n.has_class("chips")]
        assert [li.text() for li in chips[0].find_all("li")] == ["Accounting", "AppPushGroup"]
        assert_table(taylor, next(it), "3. Taylor's account")
        assert_lines(explain(taylor, "Demo SCIM App"), next(it), "3. Explain")
        # 4. Unassign Accounting... shows the plan; Cancel changes nothing.
        plan = console.follow(assignments, "Unassign Accounting…")
        assert_lines(plan.by_class("impact").lines(), next(it), "4. the plan")
        back = console.follow(plan, "Cancel")
        assert back.url == assignments.url
        assert console.get(assignments.url).tables() == assignments.tables()

        # 5. Groups -> Accounting, Remove next to Taylor Smith.
        accounting = console.follow(console.follow(home, "Groups"), "Accounting")
        console.submit(accounting, "Remove taylor.smith@example.com from Accounting")
        wait_until(lambda: nothing_pending(console), "Taylor's removal to be applied")
        assert_table(console.get(accounting.url), next(it), "5. Accounting's members")
        # 6. The result.
        taylor = console.get(taylor.url)
        assert_table(taylor, next(it), "6. Taylor's account")
        assert_lines(explain(taylor, "Demo SCIM App"), next(it), "6. Explain")
        assert_table(console.get(push_groups.url), next(it), "6. the pushed groups")
        log = console.follow(home, "System Log")
        taylors = console.follow(log, "Taylor Smith")  # in the Targets column
        assert "?target=" in taylors.url
        assert_table(taylors, next(it), "6. Taylor's events")
        assert_table(console.follow(home, "Health"), next(it), "6. Health")
        assert next(it, None) is None
    finally:
        console.close()

    # The command line, pointed at data/demo.
    commands = page[cli:]
    assert [b.lang for b in commands] == ["sh", "text"]
    fake_venv(demo.cwd)
    done = run_bash(commands[0].body, demo.cwd, clean_env())
    assert done.returncode == 0 and not done.stderr, done.stdout + done.stderr
    assert_same(commands[1].body, done.stdout, "headwater plan and status")


@contextmanager
def scim_server_of_the_page(folder: Path) -> Iterator[tuple[str, str]]:
    """The page's own SCIM server command (its ``console`` block), on a free port instead of
    8181; yields the server's base URL and bearer token."""
    command = next(b.body for b in blocks(CURL) if b.lang == "console").strip()
    argv = shlex.split(command)
    assert argv[:4] == [".venv/bin/python", "-m", "headwater.testing.scimserver", "--port"], argv
    assert argv[4:] == ["8181", "--bearer-token", argv[6]], argv
    port = free_port()
    argv[0], argv[4] = sys.executable, str(port)
    url, token = f"http://127.0.0.1:{port}/v2", argv[6]
    with (folder / "scim-server.log").open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=folder, env=clean_env(), stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, (folder / "scim-server.log").read_text()
            try:
                headers = {"Authorization": f"Bearer {token}"}
                return httpx.get(url + "/ServiceProviderConfig", headers=headers).is_success
            except httpx.TransportError:
                return False

        wait_until(answers, "the SCIM server of the page")
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def with_curl(demo: Demo) -> None:
    page = [b for b in blocks(CURL) if b.lang in ("sh", "text")]
    scripts = [b.body for b in page if b.lang == "sh"]
    expected: list[str] = []
    for block in page:
        if block.lang == "sh":
            expected.append("")
        else:
            assert expected, "a text block before any sh block"
            expected[-1] += block.body
    marker = "@@ end of block {} @@"
    script = "".join(f"{body}echo '{marker.format(n)}'\n" for n, body in enumerate(scripts))
    with scim_server_of_the_page(demo.cwd) as (scim_url, scim_token):
        # The page's defaults hold, but for the ports: the test cannot take 8080 and 8181.
        variables = {"BASE": demo.base, "TOKEN": demo.token, "SCIM_URL": scim_url}
        env = {k: v for k, v in clean_env().items() if k not in DOC_VARIABLES} | variables
        done = run_bash(script, demo.cwd, env)
        assert done.returncode == 0 and not done.stderr, done.stdout + done.stderr
        printed: list[str] = []
        current: list[str] = []
        for line in done.stdout.split("\n"):
            if line == marker.format(len(printed)):
                printed.append("".join(f"{x}\n" for x in current))
                current = []
            else:
                current.append(line)
        assert current == [""], done.stdout  # nothing after the last block
        assert len(printed) == len(scripts)
        for n, (want, got) in enumerate(zip(expected, printed, strict=True)):
            first = scripts[n].strip().splitlines()[0]
            assert_same(want, got, f"curl section, sh block {n + 1} ({first})")

        accounts = {u["userName"]: u for u in scim_get(scim_url, scim_token, "/Users")}
        assert {name: a["active"] for name, a in accounts.items()} == {
            "taylor.smith@example.org": False,
            "alex.johnson@example.org": True,
            "jordan.lee@example.org": True,
        }
        (group,) = scim_get(scim_url, scim_token, "/Groups")
        assert group["displayName"] == "AppPushGroup"
        members = {m["value"] for m in group.get("members", [])}
        assert members == {accounts["alex.johnson@example.org"]["id"]}


def scim_get(url: str, token: str, path: str) -> list[dict[str, Any]]:
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    resources: list[dict[str, Any]] = response.json()["Resources"]
    return resources


# --- The tests ---------------------------------------------------------------------------------


def test_the_page_is_shaped_as_this_test_expects() -> None:
    script = sh_blocks(CURL)
    assert len(script) >= 8
    assert script[0].startswith("BASE=${BASE:-http://127.0.0.1:8080}\n")
    for name in ("SCIM_URL", "SCIM_TOKEN"):
        assert f"{name}=${{{name}:-" in script[0]
    assert "jq" not in "".join(script)  # jq is no documented prerequisite
    text = "\n".join(script)
    for path in (
        "/api/v1/users?activate=true",
        '/api/v1/groups"',
        "/api/v1/groups/$ACCOUNTING/users/$USER_ID",
        "/api/v1/apps?activate=true",
        "/api/v1/apps/$APP/connections/default?activate=true",
        "/api/v1/apps/$APP/groups/$ACCOUNTING",
        "/api/v1/apps/$APP/group-push/mappings",
        '/api/v1/apps/$APP/users"',
        "/api/v1/apps/$APP/plan",
        "/api/v1/apps/$APP/users/$TAYLOR/explain",
        "/api/v1/groups/$ACCOUNTING/users/$TAYLOR",
        "/api/v1/logs",
    ):
        assert f'"$BASE{path}' in text, path
    for method in ("POST", "PUT", "DELETE"):
        assert f"-X {method}" in text
    # Outside the console's steps, every text block is the output of the sh block before it.
    for title in (BEFORE, CURL):
        langs = [b.lang for b in blocks(title) if b.lang in ("sh", "text")]
        assert langs[0] == "sh", title


def test_normalise_replaces_only_what_varies() -> None:
    assert normalise("Taylor 00uE0UVjLc8NKvlyb9y1, Accounting 00gE0UVkQ2Z2ME9oDQwF") == (
        "Taylor <user id>, Accounting <group id>"
    )
    assert normalise("Account created (edd8dfb7ffe04d5382d0ff2d5278f1e0)") == (
        "Account created (<downstream id>)"
    )
    assert normalise("204\n204\n") == "204\n204\n"
    assert normalise("│ vm:28231:7fd44115c550 │ 2026-11-30 15:10:17 UTC │") == (
        "│ <worker> │ <time> │"
    )
    assert normalise("Taylor is PROVISIONED in the directory.") == (
        "Taylor is PROVISIONED in the directory."
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("curl") is None and os.environ.get("CI", "").lower() != "true",
    reason="curl is not installed",
)
def test_the_quickstart_word_for_word(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    repository.mkdir()
    with Demo(repository) as demo:
        before_you_start(demo)
        in_the_console(demo)
        with_curl(demo)
