"""A circuit breaker per network provider (Claude, AnkiConnect, the images API), on `pybreaker`.

After `fail_max` consecutive failed calls the provider's circuit opens for `reset_s` seconds:
calls then fail at once with `CircuitOpenError` (one line: provider, failures, until when)
instead of hammering a service that is down. When the cool-down is over the next call is a
trial (half-open): success closes the circuit, failure opens it for another cool-down.

What counts as a failure is decided by the provider, not here: the breaker wraps only the
provider's transport (after its own retries), and a retryable `StageError` coming out of it
(5xx, 529, 429 after retries, timeouts, refused connections) counts; a non-retryable one
(400/401/404, Anki refusing an action) means the service answered, which pybreaker treats as
a success. Replies the provider re-asks (invalid JSON) happen outside the wrapped call.

State lives in Redis when `redis_url` is set (`STAGEFLOW_BREAKER_REDIS`), so every run worker
and process sees the same circuit; otherwise in this process only. One circuit per provider
and endpoint (host:port): two AnkiConnect URLs are two services.

In a Dagster step, the stage runtime (core/stage.py) decides what an open circuit does to the
step: fail now (the default) or, with `wait_retries` > 0 (`STAGEFLOW_BREAKER_WAIT_RETRIES`), ask
Dagster to retry the step when the cool-down is over (`RetryRequested`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

# CircuitOpenError lives with the other stage errors, so the stage runtime can know it
from stageflow_assets.core.errors import BadInputError, CircuitOpenError, StageError
from stageflow_assets.core.redact import redact_url

__all__ = ["BreakerConfig", "Circuit", "CircuitOpenError", "breaker_config_from_env", "circuit",
           "counts_as_failure", "endpoint_of", "forget_circuits", "guarded",
           "redact_url"]

if TYPE_CHECKING:  # pybreaker imports redis (~40 ms): only when a provider makes a call
    import pybreaker

REDIS_ENV = "STAGEFLOW_BREAKER_REDIS"
FAIL_MAX_ENV = "STAGEFLOW_BREAKER_FAIL_MAX"
RESET_ENV = "STAGEFLOW_BREAKER_RESET_S"
WAIT_RETRIES_ENV = "STAGEFLOW_BREAKER_WAIT_RETRIES"
DEFAULT_NAMESPACE = "stageflow:breaker"
# a Redis that does not answer must not stall every provider call for long
REDIS_TIMEOUT_S = 2.0

log = dg.get_dagster_logger("stageflow_assets.breaker")


class BreakerConfig(dg.Config):
    """Circuit-breaker settings of one provider resource (built from the environment by
    `breaker_config_from_env`)."""

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db holding shared breaker state; none: in-process")
    fail_max: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    reset_s: float = Field(default=60.0, gt=0, description="cool-down before a trial call")
    wait_retries: int = Field(
        default=0, ge=0,
        description="0: a step meeting an open circuit fails; N: it is retried after the cool-down, "
                    "up to N attempts in all")
    namespace: str = Field(default=DEFAULT_NAMESPACE, description="prefix of the Redis keys")


def counts_as_failure(exc: BaseException) -> bool:
    """A call failed in a way that says the service is unwell (see the module docstring)."""
    return isinstance(exc, StageError) and exc.retryable and not isinstance(exc, CircuitOpenError)


def endpoint_of(url: str) -> str:
    """host[:port] of a provider URL: what one circuit stands for (no credentials, no path)."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


class _Listener:
    """Logs each state change once, in the process that noticed it (pybreaker's listener
    interface, duck-typed so that pybreaker is imported on first use only)."""

    def __init__(self, circuit: "Circuit") -> None:
        self.circuit = circuit

    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def failure(self, cb: Any, exc: BaseException) -> None:
        pass

    def success(self, cb: Any) -> None:
        pass

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        name = new_state.name
        if name == "open":
            until = self.circuit.opened_until()
            log.warning(f"{self.circuit.provider} ({self.circuit.endpoint}): circuit open after "
                        f"{cb.fail_counter} consecutive failures"
                        + (f", until {until.isoformat(timespec='seconds')}" if until else ""))
        elif old_state is not None:
            log.info(f"{self.circuit.provider} ({self.circuit.endpoint}): circuit {name}")


class Circuit:
    """One provider endpoint's breaker; get it with `circuit()` so state is shared."""

    def __init__(self, provider: str, endpoint: str, config: BreakerConfig, redis_url: str | None) -> None:
        import pybreaker

        self.provider, self.endpoint, self.config = provider, endpoint, config
        self.redis_url = redis_url
        self.storage = self._storage()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=config.fail_max, reset_timeout=config.reset_s,
            state_storage=self.storage, name=f"{provider}@{endpoint}",
            exclude=[lambda exc: not counts_as_failure(exc)],
            listeners=[_Listener(self)],
            # the call that trips the circuit keeps its own error (it says what went wrong);
            # only the calls after it get CircuitOpenError
            throw_new_error_on_trip=False,
        )

    def _storage(self) -> "pybreaker.CircuitBreakerStorage":
        import pybreaker

        if not self.redis_url:
            return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        import redis

        client = redis.Redis.from_url(self.redis_url, decode_responses=False,
                                      socket_timeout=REDIS_TIMEOUT_S,
                                      socket_connect_timeout=REDIS_TIMEOUT_S)
        if client.get_connection_kwargs().get("decode_responses"):
            # pybreaker decodes the bytes it reads itself
            raise BadInputError(f"{REDIS_ENV}: drop decode_responses from the URL ({redact_url(self.redis_url)})")
        try:
            return pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED, client,
                namespace=f"{self.config.namespace}:{self.provider}:{self.endpoint}")
        except redis.RedisError as exc:
            # the breaker protects the provider; it must not become a second way to fail
            log.warning(f"{self.provider}: breaker Redis at {redact_url(self.redis_url)} unreachable "
                        f"({type(exc).__name__}): circuit state kept in this process only")
            self.redis_url = None
            return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)

    def opened_until(self) -> datetime | None:
        """When the cool-down ends, rounded up to the second (shown to the second, and never
        earlier than pybreaker's own check)."""
        opened_at = self.storage.opened_at
        if opened_at is None:
            return None
        until = opened_at + timedelta(seconds=self.config.reset_s)
        if until.microsecond:
            until = until.replace(microsecond=0) + timedelta(seconds=1)
        return until

    def state(self) -> dict[str, Any]:
        """The breaker's state for step metadata and manifests (no secrets)."""
        current = self.breaker.current_state
        until = self.opened_until() if current != "closed" else None
        return {
            "provider": self.provider, "endpoint": self.endpoint, "state": current,
            "consecutive_failures": self.breaker.fail_counter, "fail_max": self.config.fail_max,
            "reset_s": self.config.reset_s,
            "opened_until": until.astimezone(timezone.utc).isoformat(timespec="seconds") if until else None,
            "shared_through": redact_url(self.redis_url) if self.redis_url else "this process",
        }

    @contextlib.contextmanager
    def guard(self, wait_retries: int = 0) -> Iterator[None]:
        """Run the block as one call through the breaker; CircuitOpenError while open
        (`wait_retries`: the caller's `BreakerConfig.wait_retries`, for the stage runtime)."""
        import pybreaker

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.breaker.calling())
            except pybreaker.CircuitBreakerError:
                until = self.opened_until() or datetime.now(timezone.utc)
                state = self.state()
                raise CircuitOpenError(
                    f"{self.provider}: circuit open after {state['consecutive_failures']} consecutive "
                    f"failures, until {until.strftime('%Y-%m-%dT%H:%M:%SZ')} ({RESET_ENV}={self.config.reset_s:g})",
                    provider=self.provider, until=until, wait_retries=wait_retries, breaker=state,
                ) from None
            yield


_circuits: dict[tuple, Circuit] = {}
_circuits_lock = threading.Lock()


def circuit(provider: str, url: str, config: BreakerConfig) -> Circuit:
    """The circuit of `provider` at `url`'s endpoint under `config` (one object per process,
    since resources are rebuilt for every run and step)."""
    redis_url = config.redis_url
    if isinstance(redis_url, dg.EnvVar):  # resources used outside a run (the CLI) keep the EnvVar
        redis_url = redis_url.get_value()
    endpoint = endpoint_of(url)
    # wait_retries is not part of the circuit: it only says what a step does when it is open
    key = (provider, endpoint, redis_url or None, config.fail_max, config.reset_s, config.namespace)
    with _circuits_lock:
        found = _circuits.get(key)
        if found is None:
            found = _circuits[key] = Circuit(provider, endpoint, config, redis_url or None)
        return found


def guarded(provider: str, url: str, config: BreakerConfig) -> contextlib.AbstractContextManager[None]:
    """`with guarded("claude", base_url, self.breaker): <one transport call>`."""
    return circuit(provider, url, config).guard(config.wait_retries)


def forget_circuits() -> None:
    """Drop this process's circuits (tests; Redis state is untouched)."""
    with _circuits_lock:
        _circuits.clear()


def _number(environ: Mapping[str, str], name: str, default: float, kind: type) -> Any:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise BadInputError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if value < 0 or (value == 0 and name != WAIT_RETRIES_ENV):
        raise BadInputError(f"{name}={raw!r} must be {'0 or more' if name == WAIT_RETRIES_ENV else 'above 0'}")
    return value


def breaker_config_from_env(environ: Mapping[str, str] | None = None) -> BreakerConfig:
    """The breaker settings from `STAGEFLOW_BREAKER_*`. The Redis URL stays an `EnvVar` (it may
    hold a password): Dagster resolves it in the run and the UI shows only its name."""
    environ = os.environ if environ is None else environ
    return BreakerConfig(
        redis_url=dg.EnvVar(REDIS_ENV) if (environ.get(REDIS_ENV) or "").strip() else None,
        fail_max=_number(environ, FAIL_MAX_ENV, 5, int),
        reset_s=_number(environ, RESET_ENV, 60.0, float),
        wait_retries=_number(environ, WAIT_RETRIES_ENV, 0, int),
    )
