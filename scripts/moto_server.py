"""moto's server with SQS's approximate message counts taken in one cheap pass.

moto works out every attribute of a queue on each SendMessage (and on each message a
receive returns), counting the messages three times over with two datetime conversions
per message, and a long poll re-reads the receivable messages the same way on every
send to its queue. A queue holding thousands of delayed close checks (one per unpaid
order, for its payment window) made every send cost 130 ms and more, and moto fell
minutes behind after a stampede. Here the three counts come from one pass over the
messages with one clock read, shared by the reads of the same millisecond and queue
length, and the receivable messages from one clock read; both stay exact.

Under a stampede's traffic a profile of moto showed two more costs of the same kind,
removed here: every message a receive returns had its retention checked by building
all of the queue's attributes three times (counts included), and every send built them
again to read one flag; the attributes are now taken once per millisecond and queue
length, and built anew after SetQueueAttributes. Each request listed moto's package
directory (one stat per service) to find its backend; the list is now read once. And
each request's log line, which nothing reads, went through werkzeug's logger; only
warnings are logged now.

    python scripts/moto_server.py -H 127.0.0.1 -p 5000
"""

import logging
import sys

from moto import backends, server
from moto.core.utils import unix_time, unix_time_millis
from moto.sqs import models


def per_moment(queue, slot, build):
    """build(clock), kept in `slot` for the reads of the same millisecond and queue length."""
    clock = unix_time_millis()
    key = (clock, len(queue._messages))
    taken = queue.__dict__.get(slot)
    if taken is None or taken[0] != key:
        taken = (key, build(clock))
        queue.__dict__[slot] = taken
    return taken[1]


def counts(queue):
    """(waiting, in flight, delayed), as SQS's Approximate* attributes count them."""

    def count(clock):
        waiting = in_flight = delayed = 0
        for message in queue._messages:
            visible = clock > message.visible_at
            is_delayed = clock < message.delayed_until
            waiting += visible and not is_delayed
            in_flight += not visible
            delayed += is_delayed
        return waiting, in_flight, delayed

    return per_moment(queue, "_counts", count)


def receivable(queue):
    """The messages a receive may return now: one clock read for them all."""
    clock = unix_time_millis()
    return [m for m in queue._messages if clock > m.visible_at and clock >= m.delayed_until]


# A long poll re-reads this on every message sent to its queue.
models.Queue.messages = property(receivable)
models.Queue.approximate_number_of_messages = property(lambda queue: counts(queue)[0])
models.Queue.approximate_number_of_messages_not_visible = property(lambda queue: counts(queue)[1])
models.Queue.approximate_number_of_messages_delayed = property(lambda queue: counts(queue)[2])

queue_attributes = models.Queue.attributes.fget
set_queue_attributes = models.Queue._set_attributes


def attributes(queue):
    """The queue's attributes, built once per millisecond and queue length (a copy)."""
    return dict(per_moment(queue, "_attributes", lambda clock: queue_attributes(queue)))


def set_attributes(queue, *args, **kwargs):
    queue.__dict__.pop("_attributes", None)
    return set_queue_attributes(queue, *args, **kwargs)


def retained(backend, queue_name, message):
    """Whether the message is within its queue's retention period."""
    period = int(backend.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


moto_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: moto_modules
models.Queue.attributes = property(attributes)
models.Queue._set_attributes = set_attributes
models.SQSBackend.is_message_valid_based_on_retention_period = retained
logging.getLogger("werkzeug").setLevel(logging.WARNING)

if __name__ == "__main__":
    sys.exit(server.main(sys.argv[1:]))
