"""moto's server with SQS's approximate message counts taken in one pass, at most every
250 ms per queue.

moto works out every attribute of a queue on each SendMessage (and on each message a
receive returns), counting the messages three times over with a clock read per message.
A queue holding thousands of delayed close checks (one per unpaid order, for its payment
window) made every send cost seconds of scanning, and moto fell minutes behind after a
stampede. SQS's own counts are approximate and lag; these lag by at most 250 ms.

    python scripts/moto_server.py -H 127.0.0.1 -p 5000
"""

import sys
import time

from moto import server
from moto.core.utils import unix_time_millis
from moto.sqs import models

REMEMBER_SECS = 0.25


def counts(queue):
    """(waiting, in flight, delayed), as SQS's Approximate* attributes count them."""
    now = time.monotonic()
    taken = queue.__dict__.get("_counts")
    if taken is None or now - taken[0] > REMEMBER_SECS:
        clock = unix_time_millis()
        waiting = in_flight = delayed = 0
        for message in queue._messages:
            visible = clock > message.visible_at
            is_delayed = clock < message.delayed_until
            waiting += visible and not is_delayed
            in_flight += not visible
            delayed += is_delayed
        taken = (now, (waiting, in_flight, delayed))
        queue.__dict__["_counts"] = taken
    return taken[1]


models.Queue.approximate_number_of_messages = property(lambda queue: counts(queue)[0])
models.Queue.approximate_number_of_messages_not_visible = property(lambda queue: counts(queue)[1])
models.Queue.approximate_number_of_messages_delayed = property(lambda queue: counts(queue)[2])

if __name__ == "__main__":
    sys.exit(server.main(sys.argv[1:]))
