"""An in-process stand-in for Flower's Grid: runs the real ClientApp on each node, no Ray.

Unit-test scaffolding only (the product runs on Flower's engines)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity


class FakeGrid:
    def __init__(self, app: ClientApp, num_nodes: int, failing: dict[int, str] | None = None):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
        self.app = app
        self.failing = failing or {}
        self.contexts = {
            100 + i: Context(1, 100 + i, {"partition-id": i, "num-partitions": num_nodes}, RecordDict(), {})
            for i in range(num_nodes)
        }

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            pid = int(self.contexts[node].node_config["partition-id"])
            try:
                if pid in self.failing:
                    raise RuntimeError(self.failing[pid])
                # a copy, as a real link delivers one: SecAgg+ sends one content object to every node
                replies.append(self.app(copy.deepcopy(msg), self.contexts[node]))
            except Exception as exc:  # what Flower does with a ClientApp exception
                replies.append(Message(Error(code=2, reason=str(exc)), reply_to=msg))
        return replies
