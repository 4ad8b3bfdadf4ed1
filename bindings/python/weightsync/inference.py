"""Inference side: receive pushed weights directly into a model's own tensors.

::

    receiver = weightsync.WeightReceiver("10.0.0.1:29600", job="run-7", engine=0, rank=tp_rank)
    receiver.register(model)              # named parameters + buffers (e.g. *_weight_scale_inv)
    receiver.add_hook(recompute_derived)  # runs after each version lands, before serving resumes
    receiver.connect()
    receiver.start()                      # serve every version in the background ...
    receiver.wait_for_version(3)          # ... or receiver.update() for one version at a time

With a flip job (``job_spec(flip=True)``) the rank keeps serving while a version lands::

    receiver.start_weight_update()        # returns at once; the version lands in staging
    ...                                   # keep generating with the live tensors (version N-1)
    result = receiver.finish_weight_update()  # stop generating first: flip, hooks, commit


The tensors are registered with the transport once, where they are; trainers
write into them with one-sided writes (CUDA tensors: CUDA-IPC from GPUs of the
same host, UCX from elsewhere). Nothing is copied, so the model must keep using
exactly these tensors (every update re-checks that). The built-in hooks (GLM-5's
MLA absorb) run on the tensors' GPU.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import _core
from .errors import InvalidArgumentError, MismatchError, TimeoutError, WeightsyncError
from .job import _store_address, find_peer
from .metrics import AgentMetrics, MetricsAccess
from .torch_interop import TensorRef, check_tensor, check_unchanged, empty, torch_module
from .trainer import NamedTensors, named_items

Hook = Callable[[int], None]


def _call(method: "weakref.WeakMethod") -> None:
    bound = method()
    if bound is not None:
        bound()


def _where(device: int, short: bool = False) -> str:
    if device < 0:
        return "cpu" if short else "the CPU"
    return f"cuda:{device}"
Callback = Callable[[dict], None]


@dataclass
class _Pending:
    """A version started by start_weight_update(), received by `thread`."""

    version: int
    started: float
    thread: Optional[threading.Thread] = None
    landed: Optional[float] = None  # every rank landed: the flip waits for finish_weight_update()
    released: Optional[float] = None  # finish_weight_update() called: the caller stopped reading
    flipping: Optional[float] = None  # the readers' pause returned: the flip began
    resumed: Optional[float] = None
    done: bool = False
    result: Optional[dict] = None
    error: Optional[BaseException] = None


class WeightReceiver(MetricsAccess):
    """One inference rank of a weightsync job: rank `rank` of inference engine `engine`.

    coordinator: "host:port" of the job's coordinator, or None with store="etcd://host:port"."""

    def __init__(self, coordinator: Optional[str], job: str, *, engine: int = 0, rank: int = 0,
                 connect_timeout: float = 60.0, store: Optional[str] = None,
                 metrics_port: Optional[int] = None, metrics_host: str = "0.0.0.0",
                 job_secret: Optional[str] = None) -> None:
        self._store = _core.connect_store(_store_address(coordinator, store), job,
                                          connect_timeout, job_secret or "")
        self._metrics = AgentMetrics("inference", _core.inference_name(f"e{engine}r{rank}"),
                                     metrics_port, metrics_host)
        self.spec = _core.read_job(self._store, connect_timeout)
        self.layout = _core.job_layout(self.spec)
        self.engine = engine
        self.rank = rank
        self.peer = find_peer(self.spec, engine, rank)
        self.expected = _core.local_tensors(self.layout, self.peer)
        self._refs: Optional[list[TensorRef]] = None
        self._lookup: Optional[Callable[[], dict[str, Any]]] = None
        self._hooks: list[Hook] = []
        self._callbacks: list[Callback] = []
        self._agent: Optional[_core.InferenceAgent] = None
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self._closing = False
        self._last: Optional[dict] = None
        self._pending: Optional[_Pending] = None

    # -- registration -------------------------------------------------------------------------

    def register(self, tensors: NamedTensors, *, strict: bool = False) -> None:
        """Registers the destination tensors of this rank.

        tensors: a torch.nn.Module (its named parameters and buffers, e.g. the
        `*_weight_scale_inv` scale buffers), a mapping or (name, tensor) pairs. Every tensor
        the layout puts on this rank must be there, contiguous, owning its storage, with
        the layout's local shape and dtype (FP8 as float8_e4m3fn, or uint8 on torch without
        float8). strict: also refuse parameters the layout does not know.
        """
        if self._agent is not None:
            raise InvalidArgumentError("register() must come before connect()")
        try:
            items = named_items(tensors)
            by_name = {name: value for name, value, _ in items}
            wanted = {t.name for t in self.expected}
            missing = [t.name for t in self.expected if t.name not in by_name]
            if missing:
                raise MismatchError(
                    f"inference {self.peer.name}: {len(missing)} tensors of layout "
                    f"'{self.layout.name}' are missing: {', '.join(missing[:8])}"
                    f"{' ...' if len(missing) > 8 else ''}")
            extra = [n for n, _, is_buffer in items if n not in wanted and not is_buffer]
            if strict and extra:
                raise MismatchError(
                    f"inference {self.peer.name}: {len(extra)} parameters are not in layout "
                    f"'{self.layout.name}': {', '.join(extra[:8])}")
            refs = []
            for t in self.expected:
                ref = check_tensor(t.name, by_name[t.name], expected_dtype=t.dtype)
                if ref.shape != tuple(t.shape) or ref.dtype != t.dtype:
                    raise MismatchError(
                        f"inference {self.peer.name}: '{t.name}' is {list(ref.shape)} "
                        f"{by_name[t.name].dtype}, the layout expects {list(t.shape)} {t.dtype} "
                        "on this rank")
                if refs and ref.device != refs[0].device:
                    raise InvalidArgumentError(
                        f"inference {self.peer.name}: '{t.name}' is on {_where(ref.device)}, but "
                        f"'{refs[0].name}' is on {_where(refs[0].device)}: a rank's tensors must "
                        "all live on one device")
                refs.append(ref)
        except WeightsyncError as e:
            self._fail_init(e)
            raise
        self._refs = refs
        if hasattr(tensors, "named_parameters"):
            module = tensors
            self._lookup = lambda: {n: v for n, v, _ in named_items(module)}

    def allocate(self, device: Any = "cpu") -> dict[str, Any]:
        """Allocates zeroed destination tensors for this rank, registers and returns them
        (a stand-in for an engine's own parameters)."""
        tensors = {t.name: empty(t.shape, t.dtype, device) for t in self.expected}
        self.register(tensors)
        return tensors

    @property
    def device(self) -> Optional[str]:
        """Where the registered tensors live ("cpu", "cuda:N"; None before register())."""
        return None if not self._refs else _where(self._refs[0].device, short=True)

    @property
    def tensors(self) -> dict[str, Any]:
        """The registered destination tensors by name."""
        return {} if self._refs is None else {r.name: r.tensor for r in self._refs}

    def add_hook(self, hook: Hook) -> None:
        """hook(version) runs after each version landed, before the rank resumes serving (e.g.
        recompute tensors derived from the weights, as vLLM's MLA absorption). An exception
        fails that version for every agent."""
        self._hooks.append(hook)

    def add_callback(self, callback: Callback) -> None:
        """callback(result) runs after each version was committed (result: see update())."""
        self._callbacks.append(callback)

    # -- life cycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Joins the job: publishes this rank's tensors and waits until every trainer has
        validated them and connected (init_timeout)."""
        if self._agent is not None:
            return
        if self._refs is None:
            raise InvalidArgumentError("register() (or allocate()) the destination tensors first")
        readers = {}
        if self.spec.flip:
            # The agent parks its readers only for the flip; they are this receiver's caller,
            # who stops reading when it calls finish_weight_update(). (Weak: no cycle through C++.)
            pause, resume = weakref.WeakMethod(self._readers_pause), weakref.WeakMethod(
                self._readers_resume)
            readers = {"pause": lambda: _call(pause), "resume": lambda: _call(resume)}
        agent = _core.InferenceAgent(self._store, self.engine, self.rank,
                                     [r.as_core_tuple() for r in self._refs], self._after_update,
                                     **readers)
        self._metrics.attach(agent)
        _core.clear_init_refusal(self._store, _core.inference_name(self.peer.name))
        agent.init()
        self._agent = agent

    def update(self, version: Optional[int] = None) -> dict:
        """Receives one version (default: the next): waits for the trainers' request, pauses,
        waits until every write landed, runs the hooks and resumes. Returns a dict with
        version, committed, verified, checked_bytes, mismatched_bytes, wait_seconds,
        hook_seconds, verify_seconds."""
        if self._thread is not None:
            raise InvalidArgumentError("update() cannot be used while start() serves updates")
        self._refuse_pending("update()")
        return self._serve(version)

    # -- zero-pause updates (flip jobs) ---------------------------------------------------------

    def start_weight_update(self, version: Optional[int] = None) -> int:
        """Starts receiving one version (default: the next) in the background and returns its
        number at once (after connect(), which it calls first if needed).

        Flip jobs only (``job_spec(flip=True)``): the version lands in a staging copy while the
        caller keeps reading (generating with) its live tensors, which hold the previous version
        until finish_weight_update() returns. Without flip a rank's tensors are written in place,
        so the caller must not read them during the version: use update(). Refused
        (InvalidArgumentError) without flip, while start() serves, or while a version is
        pending."""
        if not self.spec.flip:
            raise InvalidArgumentError(
                f"inference {self.peer.name}: start_weight_update() needs a flip job "
                "(job_spec(flip=True)); without flip the version is written into the live "
                "tensors, so generation must pause for all of it: use update()")
        if self._thread is not None:
            raise InvalidArgumentError(
                "start_weight_update() cannot be used while start() serves updates")
        self._refuse_pending("start_weight_update()")
        if self._agent is None:
            self.connect()
        version = self._agent.next_version if version is None else version
        self._check_before(version)
        pending = _Pending(version=version, started=time.monotonic())
        pending.thread = threading.Thread(target=self._receive_pending, args=(pending,),
                                          name=f"weightsync-update-{version}", daemon=True)
        self._pending = pending
        pending.thread.start()
        return version

    @property
    def pending_version(self) -> Optional[int]:
        """The version start_weight_update() started and finish_weight_update() did not end."""
        return None if self._pending is None else self._pending.version

    @property
    def update_ready(self) -> bool:
        """True once finish_weight_update() would not wait for the wire: every rank of the fleet
        landed the started version (only the flip is left), or the version ended (failed)."""
        pending = self._pending
        return pending is not None and (pending.landed is not None or pending.done)

    def finish_weight_update(self, timeout: Optional[float] = None) -> dict:
        """Completes the version started by start_weight_update(); call it once the caller
        stopped reading its live tensors. Waits until every rank landed, lets the agent copy
        staging over the live tensors, run the hooks and commit, and returns the result (see
        update()) with the times: `paused_seconds` (this call: the pause the caller saw),
        `flip_seconds` (flip, hooks and commit), `serving_seconds` (start to finish: received
        while the caller served) and `wait_seconds` (the request until every rank landed).

        A failed version raises its typed error (e.g. PeerLostError, TimeoutError) and the live
        tensors still hold the previous version. So does a call made after the step timeout of
        the version's request: the fleet gave the version up, and it is never flipped. After `timeout` seconds, TimeoutError leaves the
        version pending (call finish_weight_update() again); its message says whether the flip
        had begun (then the live tensors must not be read until a later call returns)."""
        pending = self._pending
        if pending is None:
            raise InvalidArgumentError(
                f"inference {self.peer.name}: finish_weight_update() without a "
                "start_weight_update()")
        with self._cond:
            if pending.released is None:
                pending.released = time.monotonic()
                self._cond.notify_all()
            if not self._cond.wait_for(lambda: pending.done, timeout):
                if pending.flipping is None:
                    pending.released = None  # not flipping yet: the caller may read on
                    state = "the live tensors are untouched and may be read until"
                else:
                    state = "the flip is under way: do not read the live tensors before"
                raise TimeoutError(
                    f"inference {self.peer.name}: version {pending.version} did not finish within "
                    f"{timeout} s; it stays pending ({state} finish_weight_update() returns)")
        pending.thread.join()
        self._pending = None
        if pending.error is not None:
            raise pending.error
        result = pending.result
        now = time.monotonic()
        result["paused_seconds"] = now - pending.released
        result["serving_seconds"] = pending.released - pending.started
        result["flip_seconds"] = ((pending.resumed or now) - pending.flipping
                                  if pending.flipping is not None else 0.0)
        self._finished(result)
        return result

    def start(self) -> None:
        """Serves every version in a background thread (see wait_for_version()). Returns at
        once: the thread also joins the job first if connect() was not called."""
        if self._thread is not None:
            return
        if self._refs is None:
            raise InvalidArgumentError("register() (or allocate()) the destination tensors first")
        self._refuse_pending("start()")
        self._thread = threading.Thread(target=self._serve_forever, name="weightsync-receiver",
                                        daemon=True)
        self._thread.start()

    def wait_for_version(self, version: int, timeout: Optional[float] = None) -> int:
        """Blocks until this rank runs at least `version`; returns the version it runs.

        With start(), waits for the background thread (TimeoutError after `timeout`
        seconds; the background thread's error, if it stopped on one). Without it,
        receives the versions in this thread."""
        if self._thread is None:
            self._refuse_pending("wait_for_version()")
            while self.version < version:
                self._serve(None)
            return self.version
        with self._cond:
            done = self._cond.wait_for(
                lambda: self.version >= version or self._error is not None or self._closing,
                timeout)
            if self.version >= version:
                return self.version
            if self._error is not None:
                raise self._error
            if not done:
                raise TimeoutError(f"inference {self.peer.name}: version {version} did not arrive "
                                   f"within {timeout} s (running version {self.version})")
            raise InvalidArgumentError(f"inference {self.peer.name}: closed while waiting")

    @property
    def version(self) -> int:
        """The version this rank runs (0 before the first update)."""
        return 0 if self._agent is None else self._agent.version

    @property
    def last_result(self) -> Optional[dict]:
        return self._last

    def close(self, timeout: Optional[float] = None) -> None:
        """Stops serving and leaves the job. A version being received runs to its end first
        (up to `timeout`, default the job's step timeout). Idempotent. Refused while a version
        started by start_weight_update() is pending (finish_weight_update() first)."""
        self._refuse_pending("close()")
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._agent is not None:
            self._agent.cancel()
        if self._thread is not None:
            self._thread.join(self.spec.step_timeout + 5 if timeout is None else timeout)
            if self._thread.is_alive():
                return  # still inside a version: keep the agent and tensors alive
            self._thread = None
        if self._agent is not None:
            try:
                self._agent.leave()
            except WeightsyncError:
                pass  # the coordinator may be gone
        self._agent = None
        self._refs = None
        self._lookup = None

    def __enter__(self) -> "WeightReceiver":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pending is not None:
            try:
                self.finish_weight_update()
            except WeightsyncError:
                if exc[0] is None:
                    raise
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _serve(self, version: Optional[int]) -> dict:
        if self._agent is None:
            self.connect()
        version = self._agent.next_version if version is None else version
        self._check_before(version)
        result = self._agent.serve_step(version)
        self._finished(result)
        return result

    def _check_before(self, version: int) -> None:
        """The registered tensors are still the module's, or the version fails everywhere."""
        try:
            self._check_unchanged()
        except WeightsyncError as e:
            _core.abort_version(self._store, version, _core.inference_name(self.peer.name),
                                f"inference {self.peer.name}: {e}",
                                getattr(e, "code", None) or "invalid argument")
            raise

    def _finished(self, result: dict) -> None:
        self._last = result
        with self._cond:
            self._cond.notify_all()
        for callback in self._callbacks:
            callback(result)

    def _refuse_pending(self, what: str) -> None:
        if self._pending is not None:
            raise InvalidArgumentError(
                f"inference {self.peer.name}: {what} while version {self._pending.version} "
                "started by start_weight_update() is pending: call finish_weight_update() first")

    def _receive_pending(self, pending: _Pending) -> None:
        try:
            pending.result = self._agent.serve_step(pending.version)
        except BaseException as e:  # noqa: BLE001 - raised by finish_weight_update()
            pending.error = e
        with self._cond:
            pending.done = True
            self._cond.notify_all()

    def _readers_pause(self) -> None:
        # Called by the agent's serving thread once every rank landed (flip jobs): returns when
        # the caller stopped reading, at once for update() (the caller is not reading).
        with self._cond:
            pending = self._pending
            if pending is None:
                return
            pending.landed = time.monotonic()
            self._cond.notify_all()
            self._cond.wait_for(lambda: pending.released is not None)
            pending.flipping = time.monotonic()

    def _readers_resume(self) -> None:
        with self._cond:
            if self._pending is not None:
                self._pending.resumed = time.monotonic()

    def _serve_forever(self) -> None:
        while not self._closing:
            try:
                if self._agent is None:
                    self.connect()
                    continue
                self._serve(None)
            except BaseException as e:  # noqa: BLE001 - handed to wait_for_version()
                with self._cond:
                    if not self._closing:
                        self._error = e
                    self._cond.notify_all()
                return

    def _after_update(self, version: int) -> None:
        if not self._hooks:
            return
        device = self._refs[0].device if self._refs else -1
        if device < 0:
            for hook in self._hooks:
                hook(version)
            return
        # The serving thread's current CUDA device may be another one: hooks run on the tensors'.
        with torch_module().cuda.device(device):
            for hook in self._hooks:
                hook(version)

    def _check_unchanged(self) -> None:
        current = self._lookup() if self._lookup is not None else None
        for ref in self._refs or []:
            check_unchanged(ref, current.get(ref.name) if current is not None else ref.tensor)

    def fail_job(self, error: Exception) -> None:
        """Fails the job's start-up for every agent with this error (the first failure wins):
        for a mismatch no retry can fix, where peers should not wait for this rank."""
        try:
            _core.fail_init(self._store, _core.inference_name(self.peer.name),
                            f"inference {self.peer.name}: {error}",
                            getattr(error, "code", None) or "invalid argument")
        except WeightsyncError:
            pass

    @property
    def next_version(self) -> int:
        """The version update() takes by default (after every version this rank took part in;
        for a rank that joined a running job, the one in flight when it joined)."""
        return self.version + 1 if self._agent is None else self._agent.next_version

    def _fail_init(self, error: Exception) -> None:
        # This rank refused its own input: it may still retry, so the job is not failed; peers
        # waiting for it name this cause when they time out.
        try:
            _core.publish_init_refusal(self._store, _core.inference_name(self.peer.name),
                                       f"inference {self.peer.name}: {error}")
        except WeightsyncError:
            pass
