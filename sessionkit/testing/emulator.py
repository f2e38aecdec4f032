"""The emulator core: one place for services, clock, faults and the call log, for every provider.

An :class:`Emulator` holds the emulated services (made on first use from the ``_SERVICES``
table), the clock they run on, the injected faults and the log of calls. It knows no provider
and no wire format; everything provider-specific is reached through tables of lazy
``"module:name"`` strings that point into the provider packages (``testing/<provider>/``):

- ``_SERVICES``: the emulated services, also attributes of the emulator by name
  (``emulator.<service>``, with ``_`` for ``-``);
- ``_CLIENTS``: per service, the factory of the SDK client :meth:`Emulator.client` returns;
- ``_SETTINGS``: each provider's settings, keywords of :class:`Emulator` and attributes of it;
- ``_METHODS``: methods a provider adds to every emulator;
- ``_WIRING``: how each backend is pointed at the emulator (:meth:`Emulator.keywords`,
  :meth:`Emulator.role`);
- ``_TRANSPORTS``: each provider's *transport*, which turns that provider's requests into calls
  of the services and their answers back into responses, in process, with no thread and no
  port (each transport's module says how it hooks into its SDK), so thousands of lifecycles run
  in a second and a test can never leak a server.

Adding an emulated backend is a provider package and one row per table; nothing here changes.
:meth:`Emulator.serve` puts every service on one loopback port for clients in other processes
(:mod:`sessionkit.testing.server`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import types
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.testing.base import EmulatedError, EmulatedService, EmulatorDriftError
from sessionkit.testing.clock import VirtualClock
from sessionkit.testing.faults import Fault, FaultKind
from sessionkit.testing.wiring import _WIRING, _load, emulated_backends
from sessionkit.waiting import DEFAULT_POLL, PollPolicy

if TYPE_CHECKING:
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

#: The emulated services by attribute name (``_`` for ``-``: ``emulator.a_b`` is service ``a-b``).
_SERVICE_ATTRIBUTES: Mapping[str, str] = {name.replace("-", "_"): name for name in _SERVICES}

#: Per service, ``"module:function"`` of ``function(emulator, service, **options) -> client``:
#: a real SDK client of ``service`` whose requests the emulator answers (``options`` are the
#: provider's, e.g. a client configuration).
_CLIENTS: Mapping[str, str] = {
    "glue": "sessionkit.testing.aws.wiring:client",
    "emr-serverless": "sessionkit.testing.aws.wiring:client",
    "athena": "sessionkit.testing.aws.wiring:client",
    "emr": "sessionkit.testing.aws.wiring:client",
    "s3": "sessionkit.testing.aws.wiring:client",
    "sts": "sessionkit.testing.aws.wiring:client",
    "livy": "sessionkit.testing.livy.wiring:emulator_client",
    "dataproc": "sessionkit.testing.gcp.wiring:client",
}

#: The client factory for a service name no row of ``_CLIENTS`` claims: the provider whose
#: clients can name any of its services (one the emulator has no stand-in for answers each
#: call as an unknown operation), as the served emulator's fallback route does.
_CLIENT_FALLBACK = "sessionkit.testing.aws.wiring:client"

#: Each provider's settings, ``"module:NAME"`` of a mapping of setting name to default. Each is
#: a keyword of :class:`Emulator` and an attribute of it; names are unique across providers.
_SETTINGS: tuple[str, ...] = ("sessionkit.testing.aws.wiring:SETTINGS",)

#: Methods a provider adds to every emulator: name -> ``"module:function"`` of
#: ``function(emulator, ...)``, bound to the emulator on access.
_METHODS: Mapping[str, str] = {
    "boto3_session": "sessionkit.testing.aws.wiring:boto3_session",
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


@functools.cache
def _setting_defaults() -> Mapping[str, Any]:
    """Every provider's settings and their defaults, checked once per process."""
    defaults: dict[str, Any] = {}
    for table in _SETTINGS:
        for name, default in _load(table).items():
            taken = hasattr(Emulator, name) or name in _SERVICE_ATTRIBUTES or name in _METHODS
            if taken or name in defaults:
                raise RuntimeError(f"the emulator setting {name!r} of {table} is taken")
            defaults[name] = default
    return types.MappingProxyType(defaults)


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

    Each emulated service is also an attribute, named as the service with ``_`` for ``-``
    (:meth:`emulated_services`; ``dir(emulator)`` lists them): its timeline, scripted ends and
    faults. These attributes, the providers' settings and the methods a provider adds are
    resolved at run time from the emulator's tables, so a type checker sees them as ``Any``;
    each provider package offers typed accessors (``sessionkit.testing.<provider>``'s
    ``services`` or ``wiring`` module). An unknown attribute raises :class:`AttributeError`
    naming the services.

    Args:
        clock: The clock sessions advance on; default: a new :class:`VirtualClock`.
        seed: Seeds fault dice, ids and tokens, so runs repeat exactly.
        validate: Check every response against the service's schema (default on).
        max_calls: How many calls :attr:`calls` keeps (the oldest go first; ``None``: all,
            for measurements that slice the whole log); :meth:`call_count` stays exact beyond
            it.
        **settings: Provider settings (:attr:`settings` lists them with their defaults), each
            also an attribute of the emulator; the provider's emulated services read them
            (e.g. where their resources live).

    Raises:
        TypeError: For a keyword that is neither an argument nor a provider setting.

    Example:
        >>> from sessionkit.testing import Emulator
        >>> from sessionkit.testing.emulator import emulated_backends
        >>> emulator = Emulator()
        >>> backend = emulated_backends()[0]
        >>> keywords = emulator.keywords(backend)  # the client, a fresh location
        >>> sorted(emulator.emulated_services()) == emulator.emulated_services()
        True
        >>> all(hasattr(emulator, name.replace("-", "_")) for name in emulator.emulated_services())
        True
    """

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        seed: int = 0,
        validate: bool = True,
        max_calls: int | None = DEFAULT_MAX_CALLS,
        **settings: Any,
    ) -> None:
        defaults = _setting_defaults()
        unknown = sorted(set(settings) - set(defaults))
        if unknown:
            raise TypeError(
                f"Emulator() got unexpected keyword arguments {', '.join(map(repr, unknown))} "
                f"(its provider settings: {', '.join(sorted(defaults))})"
            )
        self.clock = clock or VirtualClock()
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
        self._setting_names = tuple(defaults)
        for name, default in defaults.items():
            if name in vars(self):
                raise RuntimeError(f"the emulator setting {name!r} is taken by the emulator")
            setattr(self, name, settings.get(name, default))

    @property
    def lock(self) -> threading.RLock:
        """The lock every transport holds while a service answers (one call at a time)."""
        return self._lock

    @property
    def settings(self) -> dict[str, Any]:
        """The providers' settings of this emulator and their current values."""
        return {name: getattr(self, name) for name in self._setting_names}

    def __getattr__(self, name: str) -> Any:
        # Only for names the instance and the class lack: the services by attribute name and
        # the providers' methods. Private names never resolve (copy and pickle probe them).
        if not name.startswith("_"):
            service = _SERVICE_ATTRIBUTES.get(name)
            if service is not None:
                return self.service(service)
            method = _METHODS.get(name)
            if method is not None:
                return types.MethodType(_load(method), self)
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r} (its services: "
            f"{', '.join(sorted(_SERVICE_ATTRIBUTES))}; methods added by providers: "
            f"{', '.join(sorted(_METHODS))})",
            name=name,
            obj=self,
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_SERVICE_ATTRIBUTES, *_METHODS})

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
        """The transport of ``provider`` (a key of ``_TRANSPORTS``), made on first use and reused.

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

    def client(self, service: str, **options: Any) -> Any:
        """A real SDK client for ``service`` whose requests this emulator answers, in process.

        Each provider's client factory (the ``_CLIENTS`` table) makes it and says which
        ``options`` it takes; its module documents the client. A service name the table does
        not list goes to the provider whose clients can name any of its services: every call
        of such a client answers as an unknown operation of that service.

        Args:
            service: The service name in its SDK, one of :meth:`emulated_services` (or any
                other name that provider's SDK knows).
            **options: What the provider's factory accepts (e.g. a client configuration).

        Returns:
            The SDK's own client, pointed at this emulator.

        Example:
            >>> emulator = Emulator()
            >>> clients = {name: emulator.client(name) for name in emulator.emulated_services()}
            >>> len(clients) == len(emulator.emulated_services())
            True
        """
        factory = _load(_CLIENTS.get(service, _CLIENT_FALLBACK))
        return factory(self, service, **options)

    @contextlib.contextmanager
    def serve(self, *, port: int = 0) -> Iterator[str]:
        """Serve every emulated service on one loopback port, for clients in any process.

        Clients point their endpoint URL at the URL (each provider's docs page says which URL
        its clients are given); ``/_sessionkit/...`` is the control endpoint (see
        :mod:`sessionkit.testing.server`). State is this emulator's: calls made through the
        server show in :attr:`calls`, and tests can drive :attr:`clock` directly. The server
        and its threads are gone when the block ends.

        Args:
            port: The port on 127.0.0.1 (0: any free port).

        Yields:
            The base URL, e.g. ``"http://127.0.0.1:49152"``.

        Example:
            >>> from sessionkit import open_session
            >>> from sessionkit.testing.server import connect
            >>> emulator = Emulator()
            >>> backend = emulated_backends()[0]
            >>> with emulator.serve() as url:
            ...     keywords, role = connect(url, backend)  # as another process would
            ...     with open_session(backend, role=role, poll_policy=emulator.poll_policy(),
            ...                       **keywords) as session:
            ...         print(session.state)
            READY
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
