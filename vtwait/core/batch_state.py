"""A batch's place, saved as JSON and resumed by another process, with no I/O.

    state = BatchState.new(job_ids)                  # or BatchState.from_json(text)
    for status in api.watch_batch(state): ...        # the client keeps it current
    text = state.to_json()                           # write it anywhere, any time

What is kept is what a new process needs to learn of every end, including those that happened
while no process was watching: the jobs still pending, the final documents of those whose end was
handed to the caller (:meth:`BatchState.record`), and the event stream's last event id (sent as
``Last-Event-ID``: the server replays what its event log still holds, and every stream opens with
a snapshot of its jobs, so an end is never missed). A job counts as finished only once its status
was handed out: one that ended but was not yet yielded when the process died is learned again by
the next (at least once, never lost). A bound state (:meth:`BatchState.bind`) reads the stream's
place from the live :class:`~vtwait.core.batch.ManyJobs`; saving costs O(jobs).

The format (version 1)::

    {"version": 1, "job_ids": ["j1", "j2", ...], "pending": ["j2", ...],
     "finished": {"j1": {<final status document>}}, "last_event_id": "1700000000000042"}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from vtwait.core.batch import ManyJobs, unique_job_ids
from vtwait.core.errors import ProtocolError
from vtwait.core.status import JobStatus, parse_status_document

__all__ = ["STATE_VERSION", "BatchState"]

#: The version of the JSON format written (and the only one read).
STATE_VERSION = 1


class BatchState:
    """Where a wait for many jobs stands: what is pending, what ended, the last event id.

    Args:
        job_ids: Every job of the batch, in order.
        finished: Final status documents of the jobs already ended.
        last_event_id: The event stream's position ("" for none).
    """

    def __init__(self, job_ids: Iterable[str], *, finished: Mapping[str, Mapping[str, Any]] | None
                 = None, last_event_id: str = "") -> None:
        self.job_ids: tuple[str, ...] = tuple(unique_job_ids(job_ids))
        self._finished: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (finished or {}).items()}
        self._last_event_id = last_event_id
        self._batch: ManyJobs | None = None

    @classmethod
    def new(cls, job_ids: Iterable[str]) -> BatchState:
        """The state of a batch nothing is known of yet."""
        return cls(job_ids)

    # ----------------------------------------------------------------------------- the view
    @property
    def pending(self) -> list[str]:
        """The jobs not known to have ended, in order."""
        finished = self.finished
        return [job_id for job_id in self.job_ids if job_id not in finished]

    @property
    def finished(self) -> dict[str, dict[str, Any]]:
        """``{job_id: final status document}`` of the jobs whose end was handed out."""
        return dict(self._finished)

    def record(self, status: JobStatus) -> None:
        """Count a final status as handed to the caller (the clients call it before yielding)."""
        if status.job_id in self.job_ids and status.done:
            self._finished[status.job_id] = dict(status.raw) or {
                "job_id": status.job_id, "result": status.result.value}

    @property
    def last_event_id(self) -> str:
        """The lowest position any of the batch's streams has reached ("" before any event).

        The lowest, so that no stream's events are skipped; what was seen twice is dropped.
        """
        if self._batch is None:
            return self._last_event_id
        ids = [chunk.last_event_id for chunk in self._batch.chunks if chunk.last_event_id]
        if not ids:
            return self._last_event_id
        return min(ids, key=lambda i: (len(i), i))  # decimal ids: shorter is smaller

    def statuses(self) -> dict[str, JobStatus]:
        """The finished jobs' final statuses, parsed."""
        return {job_id: parse_status_document(doc, job_id=job_id)
                for job_id, doc in self.finished.items()}

    # ------------------------------------------------------------------------ with a batch
    def bind(self, batch: ManyJobs) -> None:
        """Follow ``batch`` (made of :attr:`pending`) from now on; its streams resume from
        :attr:`last_event_id`."""
        self._batch = batch
        if self._last_event_id:
            for chunk in batch.chunks:
                chunk.last_event_id = self._last_event_id

    # ------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The state as the JSON document of the module docstring."""
        return {"version": STATE_VERSION, "job_ids": list(self.job_ids), "pending": self.pending,
                "finished": self.finished, "last_event_id": self.last_event_id}

    def to_json(self) -> str:
        """The state as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchState:
        """A state from :meth:`to_json`'s text.

        Raises:
            ProtocolError: the text is not a batch state this version reads.
        """
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"a batch state must be JSON: {exc}") from None
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Any) -> BatchState:
        """A state from :meth:`to_dict`'s document (see :meth:`from_json`)."""
        if not isinstance(document, Mapping) or document.get("version") != STATE_VERSION:
            raise ProtocolError(f"not a batch state of version {STATE_VERSION}: "
                                f"{str(document)[:80]!r}")
        job_ids, finished = document.get("job_ids"), document.get("finished", {})
        last = document.get("last_event_id", "")
        if not isinstance(job_ids, list) or not all(isinstance(j, str) and j for j in job_ids):
            raise ProtocolError("a batch state's job_ids must be a list of non-empty strings")
        if not isinstance(finished, Mapping) or not all(
                isinstance(v, Mapping) for v in finished.values()):
            raise ProtocolError("a batch state's finished must map job ids to status documents")
        if not isinstance(last, str) or (last and not last.isdigit()):
            raise ProtocolError(f"a batch state's last_event_id must be decimal digits, got {last!r}")
        unknown = set(finished) - set(job_ids)
        if unknown:
            raise ProtocolError(f"a batch state's finished names jobs not in job_ids: "
                                f"{sorted(unknown)[:3]}")
        return cls(job_ids, finished=finished, last_event_id=last)
