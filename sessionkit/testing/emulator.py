"""The emulator core: one place for services, clock, faults and the call log, for every provider.

An :class:`Emulator` holds the emulated services (made on first use from the ``_SERVICES``
table), the clock they run on, the injected faults and the log of calls. It knows no wire
format: each provider's *transport* (``_TRANSPORTS``) turns that provider's requests into calls
of the services and their answers back into responses, in process, with no thread and no port
(each transport's module says how it hooks into its SDK), so thousands of lifecycles run in a
second and a test can never leak a server. :meth:`Emulator.serve` puts every service on one
loopback port for clients in other processes (:mod:`sessionkit.testing.server`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.testing.base import EmulatedError, EmulatedService, EmulatorDriftError
from sessionkit.testing.clock import VirtualClock
from sessionkit.testing.faults import Fault, FaultKind
from sessionkit.waiting import DEFAULT_POLL, PollPolicy

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from sessionkit.testing.aws.athena import AthenaService
    from sessionkit.testing.aws.emr_serverless import EmrServerlessService
    from sessionkit.testing.aws.glue import GlueService
    from sessionkit.testing.aws.s3 import S3Service
    from sessionkit.testing.aws.transport import AwsTransport
    from sessionkit.testing.aws.transport import decode_request as decode_request
    from sessionkit.testing.aws.transport import encode as encode
    from sessionkit.testing.spark import LocalSparkConnect

__all__ = ["Call", "Emulator", "EmulatorDriftError", "emulated_backends"]

logger = logging.getLogger(__name__)

_SERVICES: Mapping[str, str] = {
    "glue": "sessionkit.testing.aws.glue:GlueService",
    "emr-serverless": "sessionkit.testing.aws.emr_serverless:EmrServerlessService",
    "athena": "sessionkit.testing.aws.athena:AthenaService",
    "emr": "sessionkit.testing.aws.emr:EmrService",
    "s3": "sessionkit.testing.aws.s3:S3Service",
    "sts": "sessionkit.testing.aws.sts:StsService",
    "livy": "sessionkit.testing.livy.service:LivyService",
    "dataproc": "sessionkit.testing.gcp.dataproc:DataprocService",
}


#: How each emulated backend is reached: ``"module:function"`` of a ``function(emulator,
#: location_name) -> keywords`` that makes a fresh location and returns the connection and
#: location keywords, and the ``"module:function"`` of a ``function(emulator) -> role``.
_WIRING: Mapping[str, tuple[str, str]] = {
    "glue": ("sessionkit.testing.aws.wiring:glue", "sessionkit.testing.aws.wiring:role"),
    "emr-serverless": (
        "sessionkit.testing.aws.wiring:emr_serverless",
        "sessionkit.testing.aws.wiring:role",
    ),
    "athena": ("sessionkit.testing.aws.wiring:athena", "sessionkit.testing.aws.wiring:role"),
    "emr": ("sessionkit.testing.aws.wiring:emr", "sessionkit.testing.aws.wiring:role"),
    "livy": ("sessionkit.testing.livy.wiring:keywords", "sessionkit.testing.livy.wiring:role"),
    "dataproc": (
        "sessionkit.testing.gcp.dataproc:wiring_keywords",
        "sessionkit.testing.gcp.dataproc:wiring_role",
    ),
}

#: Each provider's transport, ``"module:Class"`` of a class built as ``Class(emulator)``.
_TRANSPORTS: Mapping[str, str] = {
    "aws": "sessionkit.testing.aws.transport:AwsTransport",
}

#: How many calls :attr:`Emulator.calls` keeps by default (the counts stay exact beyond it).
DEFAULT_MAX_CALLS = 10_000

#: Names that moved to a provider's transport, still importable from here.
_MOVED = {
    "decode_request": "sessionkit.testing.aws.transport:decode_request",
    "encode": "sessionkit.testing.aws.transport:encode",
    "KNOWN_DEVIATIONS": "sessionkit.testing.aws.transport:KNOWN_DEVIATIONS",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return _load(_MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def emulated_backends() -> list[str]:
    """The backends the emulator can stand in for, sorted."""
    return sorted(_WIRING)


@attrs.frozen(kw_only=True)
class Call:
    """One call the emulator received.

    Attributes:
        service: The service name (its name in the provider's SDK).
        operation: The operation name, e.g. ``"GetSession"``.
        at: Virtual seconds on the emulator clock.
        params: The decoded request parameters.
        outcome: ``"ok"``, an error code, or the name of an injected connection fault.
    """

    service: str
    operation: str
    at: float
    params: Mapping[str, Any] = attrs.field(repr=False)
    outcome: str


class Emulator:
    """A local stand-in for the session APIs of every emulated backend (``emulated_backends()``).

    In process by default (:meth:`client`); :meth:`serve` also puts it on a loopback port for
    clients in other processes.

    Args:
        clock: The clock sessions advance on; default: a new :class:`VirtualClock`.
        region: The region of the clients it makes and the ARNs it reports.
        account_id: The account id in ARNs.
        seed: Seeds fault dice, ids and tokens, so runs repeat exactly.
        validate: Check every response against the service's schema (default on).
        max_calls: How many calls :attr:`calls` keeps (the oldest go first; ``None``: all,
            for measurements that slice the whole log); :meth:`call_count` stays exact beyond
            it.

    Example:
        >>> from sessionkit.testing import Emulator
        >>> emulator = Emulator()
        >>> glue = emulator.client("glue")
        >>> glue.list_sessions()["Ids"]
        []
    """

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        seed: int = 0,
        validate: bool = True,
        max_calls: int | None = DEFAULT_MAX_CALLS,
    ) -> None:
        self.clock = clock or VirtualClock()
        self.region = region
        self.account_id = account_id
        self.rng = random.Random(seed)
        self.validate = validate
        self.faults: list[Fault] = []
        if max_calls is not None and (isinstance(max_calls, bool) or max_calls < 1):
            raise ValueError(f"max_calls must be a positive number or None, got {max_calls!r}")
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._services: dict[str, EmulatedService] = {}
        self._transports: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """The lock every transport holds while a service answers (one call at a time)."""
        return self._lock

    # -- services ----------------------------------------------------------------------------

    def emulated_services(self) -> list[str]:
        """The names of the services this emulator can answer, sorted."""
        return sorted(_SERVICES)

    def service(self, name: str) -> EmulatedService:
        """The emulated service behind SDK service ``name`` (made on first use)."""
        with self._lock:
            if name not in self._services:
                path = _SERVICES.get(name)
                if path is None:
                    raise EmulatedError(
                        "UnknownOperationException",
                        f"the sessionkit emulator does not emulate {name}",
                    )
                self._services[name] = _load(path)(self)
            return self._services[name]

    @property
    def glue(self) -> GlueService:
        """The emulated Glue service (its timeline, scripts and sessions)."""
        return self.service("glue")  # type: ignore[return-value]

    @property
    def emr_serverless(self) -> EmrServerlessService:
        """The emulated EMR Serverless service."""
        return self.service("emr-serverless")  # type: ignore[return-value]

    @property
    def athena(self) -> AthenaService:
        """The emulated Athena service."""
        return self.service("athena")  # type: ignore[return-value]

    @property
    def s3(self) -> S3Service:
        """The emulated S3 (objects only: where Athena calculations leave their output)."""
        return self.service("s3")  # type: ignore[return-value]

    # -- wiring a backend ------------------------------------------------------------------------

    def keywords(self, backend: str, *, location: str = "sessionkit-local") -> dict[str, Any]:
        """The keywords that point ``backend`` at this emulator, with a fresh location.

        The location (an application, a work group, a cluster: whatever the backend needs) is
        created on the emulator under the name ``location``; pass a new name for a second one.

        Args:
            backend: A backend name from :func:`emulated_backends`.
            location: The name of the location to create.

        Returns:
            Connection and location keywords for :func:`~sessionkit.open_session` and friends
            (add ``poll_policy=emulator.poll_policy()`` for virtual time).

        Raises:
            LookupError: When the emulator has no stand-in for ``backend``.
        """
        wiring = _WIRING.get(backend)
        if wiring is None:
            raise LookupError(
                f"the sessionkit emulator does not emulate the {backend} backend "
                f"(it emulates {', '.join(emulated_backends())})"
            )
        keywords: dict[str, Any] = _load(wiring[0])(self, location)
        return keywords

    def role(self, backend: str) -> str:
        """A role (or service account, or proxy user) the emulated ``backend`` accepts."""
        wiring = _WIRING.get(backend)
        if wiring is None:
            raise LookupError(f"the sessionkit emulator does not emulate the {backend} backend")
        role: str = _load(wiring[1])(self)
        return role

    # -- clients -------------------------------------------------------------------------------

    def transport(self, provider: str) -> Any:
        """The transport of ``provider`` (``"aws"``, ...), made on first use and then reused.

        Raises:
            LookupError: When the emulator has no transport for ``provider``.
        """
        with self._lock:
            if provider not in self._transports:
                path = _TRANSPORTS.get(provider)
                if path is None:
                    raise LookupError(f"the sessionkit emulator has no {provider} transport")
                self._transports[provider] = _load(path)(self)
            return self._transports[provider]

    @property
    def _aws(self) -> AwsTransport:
        transport: AwsTransport = self.transport("aws")
        return transport

    def boto3_session(self) -> boto3.session.Session:
        """The boto3 session whose clients all talk to this emulator (dummy credentials).

        It is one session per emulator, made on first use: its clients share the models read
        once, so making one costs milliseconds.
        """
        return self._aws.session

    def client(self, service: str, *, config: Config | None = None) -> Any:
        """A real boto3 client for ``service`` whose requests this emulator answers.

        botocore's own retries are off (one attempt per call), so injected faults reach the
        caller exactly as counted; pass ``config`` to change that. An operation the emulator
        does not emulate answers like an unknown operation of the service (a ``ClientError``
        with code ``UnknownOperationException``, ``InvalidAction`` on the query protocol).

        Args:
            service: The boto3 service name: ``"glue"``, ``"emr-serverless"``, ``"athena"``.
            config: A botocore ``Config`` for the client.

        Returns:
            A boto3 client (``"livy"``: an ``httpx.Client`` bound to the emulated Livy server;
            ``"dataproc"``: a Google ``SessionControllerClient``).
        """
        if service == "dataproc":
            from sessionkit.testing.gcp.dataproc import client

            return client(self)
        if service == "livy":
            return _load("sessionkit.testing.livy.wiring:client")(self)
        return self._aws.client(service, config=config)

    @contextlib.contextmanager
    def serve(self, *, port: int = 0) -> Iterator[str]:
        """Serve every emulated service on one loopback port, for clients in any process.

        AWS clients point their ``endpoint_url`` at the URL (any credentials; the signed
        service name routes each request); ``/_sessionkit/...`` is the control endpoint (see
        :mod:`sessionkit.testing.server`). State is this emulator's: calls made through the
        server show in :attr:`calls`, and tests can drive :attr:`clock` directly. The server
        and its threads are gone when the block ends.

        Args:
            port: The port on 127.0.0.1 (0: any free port).

        Yields:
            The base URL, e.g. ``"http://127.0.0.1:49152"``.

        Example:
            >>> import boto3
            >>> emulator = Emulator()
            >>> with emulator.serve() as url:
            ...     glue = boto3.client("glue", endpoint_url=url, region_name="us-east-1",
            ...                         aws_access_key_id="x", aws_secret_access_key="x")
            ...     glue.list_sessions()["Ids"]
            []
        """
        from sessionkit.testing.server import EmulatorServer

        with EmulatorServer(self, port=port) as server:
            yield server.url

    def poll_policy(self, base: PollPolicy = DEFAULT_POLL) -> PollPolicy:
        """``base`` running on this emulator's clock, so waits take no real time."""
        return base.on(self.clock.monotonic, self.clock.sleep, self.clock.now)

    def use_spark(self, server: LocalSparkConnect) -> None:
        """Run statements on a real local Spark and hand out its Spark Connect endpoint.

        Every emulated service that runs code or hands out endpoints is switched over: ``run()``
        executes the code against ``server`` with ``spark`` bound, and ``endpoint()`` returns
        the server's URL and token, so ``Session.spark()`` connects to it. Needs the ``spark``
        extra (``pip install 'sessionkit-spark[spark]'``) and Java; see
        :mod:`sessionkit.testing.spark`.

        Args:
            server: A :class:`~sessionkit.testing.spark.LocalSparkConnect` (started here if it
                is not yet; start one per test session and share it, start-up takes seconds).

        Raises:
            NotSupportedError: When PySpark or Java is missing.
        """
        from sessionkit.testing.spark import attach

        attach(self, server)

    # -- faults and inspection -----------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        service: str | None = None,
        operations: Iterable[str] | str | None = None,
        rate: float = 1.0,
        count: int | None = None,
        latency: float = 0.0,
    ) -> Fault:
        """Inject a fault into matching calls (see :class:`Fault`).

        Returns:
            The fault; read its ``hits``, or remove it with :meth:`remove_fault`.
        """
        fault = Fault(
            kind=kind,
            service=service,
            operations=operations,
            rate=rate,
            count=count,
            latency=latency,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        """Stop injecting ``fault``."""
        with self._lock:
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        """Stop injecting every fault."""
        with self._lock:
            self.faults.clear()

    def fault_for(self, service: str, operation: str) -> Fault | None:
        """Roll the injected faults for one call; what transports ask before answering.

        ``latency`` faults are applied here (the clock sleeps). The answer is the fault that
        decides the call: a ``throttle``, ``server_error`` or ``connection_error`` (the first
        that fires), else a ``read_timeout`` that fired, else ``None``.

        Args:
            service: The service name.
            operation: The operation name.
        """
        lost: Fault | None = None
        with self._lock:
            for fault in list(self.faults):
                if not fault.matches(service, operation) or not fault.fires(self.rng):
                    continue
                if fault.kind == "latency":
                    self.clock.sleep(fault.latency)
                elif fault.kind == "read_timeout":
                    lost = fault
                else:
                    return fault
        return lost

    def record(
        self, service: str, operation: str, at: float, params: Mapping[str, Any], outcome: str
    ) -> None:
        """Log one call (transports call this once per request they answer)."""
        with self._lock:
            self._calls.append(
                Call(service=service, operation=operation, at=at, params=params, outcome=outcome)
            )
            self._counts[service, operation] += 1

    @property
    def calls(self) -> list[Call]:
        """The most recent calls, oldest first (at most ``max_calls`` of them)."""
        with self._lock:
            return list(self._calls)

    def call_count(self, service: str | None = None, operation: str | None = None) -> int:
        """How many calls matched ``service`` and ``operation`` (``None`` matches any).

        Exact over the emulator's whole life, also past the ``max_calls`` that :attr:`calls`
        keeps.
        """
        with self._lock:
            return sum(
                count
                for (called, name), count in self._counts.items()
                if (service is None or called == service)
                and (operation is None or name == operation)
            )

    def alive_sessions(self) -> dict[str, list[str]]:
        """Per service, the ids of sessions still holding resources (empty after clean tests)."""
        with self._lock:
            return {name: svc.alive() for name, svc in self._services.items() if svc.alive()}

    def created_sessions(self) -> dict[str, int]:
        """Per service, how many sessions were ever created (to count duplicates)."""
        with self._lock:
            return {name: svc.created() for name, svc in self._services.items()}

    def new_id(self, length: int = 32, alphabet: str = "0123456789abcdef") -> str:
        """A reproducible random id."""
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def request_id(self) -> str:
        """A reproducible request id (a UUID, as the services send)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
