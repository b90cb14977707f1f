"""The store on Cloud Firestore (or its emulator, through ``FIRESTORE_EMULATOR_HOST``).

Writes are optimistic compare-and-set on the document's update time: cheap when nobody
else writes, and no transaction locks (which stall for seconds under contention).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from service.store.records import (
    ComponentChange,
    ComponentRecord,
    ContentionError,
    Modified,
    StoreError,
)

COMPONENTS = "components"
_LOST_RACE = (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Conflict, gexc.Aborted)


class FirestoreStore:
    def __init__(
        self,
        project: str | None = None,
        database: str = "(default)",
        max_attempts: int = 40,
    ) -> None:
        self.project = project
        self.database = database
        self.max_attempts = max_attempts
        self._client: Any = None
        self._client_pid = 0

    @property
    def client(self) -> Any:
        # gRPC channels do not survive fork: one client per process, made on first use.
        if self._client is None or self._client_pid != os.getpid():
            self._client = firestore.Client(project=self.project, database=self.database)
            self._client_pid = os.getpid()
        return self._client

    def _component_ref(self, appid: str) -> Any:
        return self.client.collection(COMPONENTS).document(appid)

    def get_component(self, appid: str) -> ComponentRecord:
        snapshot = self._read(self._component_ref(appid))
        return _component_from(appid, snapshot)

    def modify_component(self, appid: str, change: ComponentChange) -> Modified:
        ref = self._component_ref(appid)
        for attempt in range(self.max_attempts):
            snapshot = self._read(ref)
            current = _component_from(appid, snapshot)
            new = change(current)
            if new is None or new == current:
                return Modified(current, False)
            try:
                if snapshot.exists:
                    option = self.client.write_option(last_update_time=snapshot.update_time)
                    ref.update(new.to_document(), option=option)
                else:
                    ref.create(new.to_document())
            except _LOST_RACE:
                # Someone else wrote first: back off a little, re-read and re-decide.
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                continue
            except gexc.GoogleAPICallError as exc:
                raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None
            return Modified(new, True)
        raise ContentionError(f"component {appid}: gave up after {self.max_attempts} conflicts")

    @staticmethod
    def _read(ref: Any) -> Any:
        try:
            return ref.get()
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore read failed: {type(exc).__name__}") from None


def _component_from(appid: str, snapshot: Any) -> ComponentRecord:
    if not snapshot.exists:
        return ComponentRecord(appid=appid)
    return ComponentRecord.from_document(appid, snapshot.to_dict() or {})
