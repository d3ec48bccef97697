"""The browser login, end to end against a local instance: sealtrail's own login client
(sealtrail.identity.browser) talks to `sealtrail serve`'s built-in issuer, and the token it
gets signs a file that verifies under the address typed on the authorization page.

The person at the browser is played by plain HTTP requests doing what a browser does: load
the authorization URL, submit the page's form with an email address, follow the redirect to
the client's loopback callback."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import jwt
import pytest

from sealtrail.errors import ServiceUnavailableError, TokenInvalidError
from sealtrail.identity.browser import browser_login
from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("login") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


class _Form(HTMLParser):
    """The page's form: its action and the fields a browser would submit."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action, self.method = values.get("action"), values.get("method", "get")
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


class Person:
    """A browser and the person using it: types ``email`` into the authorization page.

    browser_login ignores what its ``open_browser`` raises (a missing browser is not fatal),
    so a failed step is kept in :attr:`error` for the test to report."""

    def __init__(self, email: str) -> None:
        self.email = email
        self.pages: list[httpx.Response] = []
        self.error: BaseException | None = None

    def __call__(self, url: str) -> None:
        try:
            self._browse(url)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _browse(self, url: str) -> None:
        with httpx.Client(timeout=30, trust_env=False) as browser:
            page = browser.get(url)
            self.pages.append(page)
            assert page.status_code == 200, page.text
            form = _Form()
            form.feed(page.text)
            assert form.action and form.method == "get" and "login_hint" in form.fields
            form.fields["login_hint"] = self.email
            answer = browser.get(urljoin(url, form.action), params=form.fields)
            self.pages.append(answer)
            assert answer.status_code in (302, 303), answer.text
            callback = browser.get(answer.headers["location"])  # the client's own listener
            self.pages.append(callback)


def login(issuer: str, email: str) -> tuple[str, Person]:
    person = Person(email)
    try:
        token = browser_login(issuer, open_browser=person, timeout=60)
    except TokenInvalidError:
        if person.error is not None:
            raise person.error from None
        raise
    return token, person


def test_browser_login_gets_a_token_that_signs(instance: InstanceServer, tmp_path: Path) -> None:
    token, person = login(instance.issuer, "dev@example.com")
    assert person.pages[-1].status_code == 200  # the client's callback page
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == instance.issuer and claims["email"] == "dev@example.com"
    assert claims["aud"] == "sigstore" and claims["nonce"]  # bound to this login

    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"a release\n")
    run(str(BIN / "sealtrail"), "sign", str(artifact), "--trust-config",
        str(instance.trust_config), "--identity-token", token)
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--trusted-root",
               str(instance.trusted_root), "--certificate-identity", "dev@example.com",
               "--certificate-oidc-issuer", instance.issuer)
    assert "dev@example.com" in done.stdout


def test_a_code_is_spent_by_its_exchange(instance: InstanceServer) -> None:
    _, person = login(instance.issuer, "dev@example.com")
    location = person.pages[1].headers["location"]
    redirect_uri, query = location.split("?", 1)
    with httpx.Client(timeout=30, trust_env=False) as client:
        again = client.post(instance.issuer + "/token", data={
            "grant_type": "authorization_code", "code": httpx.QueryParams(query)["code"],
            "client_id": "sigstore", "redirect_uri": redirect_uri, "code_verifier": "x" * 43})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert again.headers["cache-control"] == "no-store"


AUTHORIZE = {"response_type": "code", "client_id": "sigstore", "scope": "openid email",
             "redirect_uri": "http://localhost:9/auth/callback", "state": "s" * 20,
             "code_challenge": "c" * 43, "code_challenge_method": "S256"}


def test_the_authorization_page_refuses_what_it_cannot_certify(
        instance: InstanceServer) -> None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        url = instance.issuer + "/authorize"
        typo = client.get(url, params={**AUTHORIZE, "login_hint": "not an address"})
        assert typo.status_code == 400 and 'name="login_hint"' in typo.text  # asked again
        assert "location" not in typo.headers
        # A redirect URI that is not on the loopback interface is never redirected to.
        away = client.get(url, params={**AUTHORIZE, "redirect_uri": "https://evil.example/cb",
                                       "login_hint": "dev@example.com"})
        assert away.status_code == 400 and "location" not in away.headers
        # Without PKCE: the error goes back to the (checked) client, with its state.
        plain = client.get(url, params={**AUTHORIZE, "code_challenge_method": "plain",
                                        "login_hint": "dev@example.com"})
        assert plain.status_code == 302
        assert plain.headers["location"].startswith(AUTHORIZE["redirect_uri"] + "?error=")
        assert "state=" + AUTHORIZE["state"] in plain.headers["location"]


def test_the_workflow_issuer_advertises_no_browser_login(instance: InstanceServer) -> None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        email = client.get(instance.issuer + "/.well-known/openid-configuration").json()
        github = client.get(instance.url + "/oidc/github/.well-known/openid-configuration").json()
        assert email["authorization_endpoint"] == instance.issuer + "/authorize"
        assert email["code_challenge_methods_supported"] == ["S256"]
        assert "authorization_endpoint" not in github
        assert client.get(instance.url + "/oidc/github/authorize").status_code == 404
    with pytest.raises(ServiceUnavailableError, match="authorization_endpoint"):
        browser_login(instance.url + "/oidc/github", open_browser=lambda url: None, timeout=5)
