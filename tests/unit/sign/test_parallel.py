"""How the signer runs many files at once: the timestamp and log requests of a file in
flight together, several files in flight, the failure of the lowest item winning, and no
thread of the run left when ``sign_many`` returns or raises.

Waits here are events and barriers with a generous timeout: when the behaviour is right,
nothing waits long; when it is wrong, the wait times out and the test fails.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
import pytest

from sealtrail.errors import LogError, TimestampInvalidError
from sealtrail.net.http import HttpRequest, HttpResponse
from sealtrail.sign import Signer, SigningContext
from tests.fakes.http import respond
from tests.unit.sign._services import TSA_URL, FakeServices, make_token

WAIT = 10.0  # seconds; only reached when the behaviour under test is broken


def is_log_request(request: HttpRequest) -> bool:
    return request.method == "POST" and request.url.endswith("/api/v1/log/entries")


def item_of(request: HttpRequest) -> int:
    """The item a Rekor v1 request is for (items are signed over sha256(b"<index>"))."""
    value = json.loads(request.body)["spec"]["data"]["hash"]["value"]
    return DIGESTS.index(bytes.fromhex(value))


DIGESTS = [hashlib.sha256(b"%d" % i).digest() for i in range(100)]


@pytest.fixture
def signer_with(services: FakeServices) -> Iterator[Callable[..., Signer]]:
    """A Rekor v1 signer whose requests pass through ``around(request, answer)`` first."""
    made: list[Signer] = []

    def make(around: Callable[[HttpRequest, Callable[[HttpRequest], HttpResponse]],
                              HttpResponse], max_workers: int) -> Signer:
        answer = services.handle
        services.handle = lambda request: around(request, answer)  # type: ignore[method-assign]
        context = SigningContext.from_trust_config(services.trust_config(), 1)
        signer = Signer(context, identity_token=make_token(), http=services.client(),
                        max_workers=max_workers)
        signer.certificate()
        made.append(signer)
        return signer

    yield make
    for signer in made:
        signer.close()


def run_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sealtrail-")]


def test_the_timestamp_and_log_requests_of_a_file_are_in_flight_together(
        signer_with: Callable[..., Signer]) -> None:
    log_asked = threading.Event()
    saw_log_in_flight: list[bool] = []

    def around(request: HttpRequest, answer: Callable[[HttpRequest], HttpResponse]
               ) -> HttpResponse:
        if request.url == TSA_URL:
            # Answered only once the log request has arrived: asked one after the other,
            # this would wait out WAIT and record False.
            saw_log_in_flight.append(log_asked.wait(WAIT))
        elif is_log_request(request):
            log_asked.set()
        return answer(request)

    result = signer_with(around, 1).sign_many([("file0", DIGESTS[0])])[0]
    assert saw_log_in_flight == [True]
    assert result.bundle["verificationMaterial"]["timestampVerificationData"]


def test_as_many_files_as_workers_are_in_flight(signer_with: Callable[..., Signer]) -> None:
    # Every log request waits until four are waiting at once: with fewer files in flight,
    # the barrier breaks (after WAIT) and the run fails.
    together = threading.Barrier(4, timeout=WAIT)

    def around(request: HttpRequest, answer: Callable[[HttpRequest], HttpResponse]
               ) -> HttpResponse:
        if is_log_request(request):
            together.wait()
        return answer(request)

    results = signer_with(around, 4).sign_many([(f"file{i}", DIGESTS[i]) for i in range(8)])
    assert [r.name for r in results] == [f"file{i}" for i in range(8)]


def test_the_lowest_failing_item_wins_and_no_later_item_starts(
        signer_with: Callable[..., Signer]) -> None:
    # Two workers: item 1 fails at once; item 0 fails after it. Item 0's failure is the one
    # raised (lowest index), and no item after them is sent: each worker's next item comes
    # after its own failure has stopped the run.
    item_one_failed = threading.Event()
    logged: list[int] = []
    answered: list[int] = []

    def around(request: HttpRequest, answer: Callable[[HttpRequest], HttpResponse]
               ) -> HttpResponse:
        if not is_log_request(request):
            return answer(request)
        item = item_of(request)
        logged.append(item)
        if item == 0:
            assert item_one_failed.wait(WAIT)
            answered.append(item)
            return respond(400, json={"code": 400, "message": "item 0 refused"})
        if item == 1:
            item_one_failed.set()
            return respond(400, json={"code": 400, "message": "item 1 refused"})
        return answer(request)

    signer = signer_with(around, 2)
    with pytest.raises(LogError, match="^file0: ") as info:
        signer.sign_many([(f"file{i}", DIGESTS[i]) for i in range(100)])
    assert "item 0 refused" in info.value.diagnostics()
    assert isinstance(info.value.__cause__, LogError)  # the original error, unnamed
    assert sorted(logged) == [0, 1]
    # Item 0's request had its answer before sign_many raised, and no thread of the run
    # is left.
    assert answered == [0]
    assert run_threads() == []


def test_a_failed_timestamp_is_reported_before_a_failed_log_request(
        services: FakeServices, signer_with: Callable[..., Signer]) -> None:
    services.tsa_knobs = {"imprint": b"\x00" * 32}
    services.fail["rekor1"] = 400
    signer = signer_with(lambda request, answer: answer(request), 1)
    with pytest.raises(TimestampInvalidError, match="^file0: .*something else"):
        signer.sign_many([("file0", DIGESTS[0])])
    assert (services.sent("tsa"), services.sent("rekor1")) == (1, 1)


def test_a_failed_log_request_waits_for_its_timestamp(services: FakeServices,
                                                      signer_with: Callable[..., Signer]
                                                      ) -> None:
    # The log fails at once while the timestamp is still being made: the error comes back
    # only once the timestamp request has ended, so no thread of the run is left.
    log_failed = threading.Event()
    timestamped: list[bool] = []

    def around(request: HttpRequest, answer: Callable[[HttpRequest], HttpResponse]
               ) -> HttpResponse:
        if request.url == TSA_URL:
            assert log_failed.wait(WAIT)
            response = answer(request)
            timestamped.append(True)
            return response
        if is_log_request(request):
            log_failed.set()
            return respond(400, json={"code": 400, "message": "refused"})
        return answer(request)

    with pytest.raises(LogError, match="^file0: "):
        signer_with(around, 1).sign_many([("file0", DIGESTS[0])])
    assert timestamped == [True]
    assert run_threads() == []


def test_results_come_back_in_item_order_and_no_thread_is_left(
        signer_with: Callable[..., Signer]) -> None:
    reported: list[str] = []
    signer = signer_with(lambda request, answer: answer(request), 8)
    results = signer.sign_many([(f"file{i}", DIGESTS[i]) for i in range(30)],
                               on_done=lambda r: reported.append(r.name))
    assert [r.name for r in results] == [f"file{i}" for i in range(30)]
    assert sorted(reported) == sorted(r.name for r in results)
    assert run_threads() == []


def test_signing_one_file_leaves_no_thread(signer_with: Callable[..., Signer]) -> None:
    signer = signer_with(lambda request, answer: answer(request), 1)
    assert signer.sign_digest(DIGESTS[0], "one").log_index >= 0
    assert run_threads() == []
