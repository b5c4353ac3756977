"""The usual case of `queue_next` as one PostgreSQL statement (apps.review.services.queue calls it first).

Contract: `next_in_one_statement(task_id=, user=, now=)` runs ONE statement (its own transaction in
autocommit, else a part of the caller's) that
  1. reads the caller's assignment with its task (status, overlap, lease length) and the lease they hold;
  2. renews that lease when they hold one (one item in hand at a time), or else
  3. locks the first open item ahead of the caller's cursor that they have no answer on and that is not kept
     for others (`FOR UPDATE SKIP LOCKED`: reviewers asking at once lock different rows and never wait),
     counts the new holder on the locked, newest version of the row (`taken + 1`, `open` recomputed), inserts
     the lease and moves the caller's cursor;
  4. returns the item with its example's content, so handing it out needs no further read.
It answers None when the caller is not assigned (the caller asks task_for why: 404 or 403), else
`Next(status, item, new)`: `item` is None when the task is not open, or when nothing is free ahead of the
cursor (then the ORM path in queue.py takes over: the wrap-around from the start, waiting on rows being taken
this very moment, the caller's skipped items, a held lease that vanished meanwhile). Its effects are the ORM
path's, row for row (tests/review/test_queue_sql.py). The SQL is a constant: nothing is compiled per call,
which was half of `next`'s CPU when it was nine ORM statements."""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from django.db import connection

from apps.datasets.models import Example
from apps.review.models import ReviewItem, ReviewResponse

# in the models' field order (Model.from_db takes values in that order)
ITEM_COLUMNS = tuple(f.column for f in ReviewItem._meta.concrete_fields)
EXAMPLE_COLUMNS = tuple(f.column for f in Example._meta.concrete_fields if f.column in {  # what example_payload reads
    "messages", "tools", "source_file", "source_line", "category", "tags", "split", "issues", "meta"})
_ITEM_JSON = {"messages", "turn_decisions"}
_EXAMPLE_JSON = {"messages", "tools", "tags", "meta"}

_item_cols = ", ".join(f"t.{c}" for c in ITEM_COLUMNS)
_held_cols = ", ".join(f"i.{c}" for c in ITEM_COLUMNS)
_example_cols = ", ".join(f"e.{c} AS e_{c}" for c in EXAMPLE_COLUMNS)

NEXT_SQL = f"""
WITH a AS MATERIALIZED (                              -- 1. the assignment, its task, the lease held
    SELECT ra.id, ra."cursor", t.status, t.overlap, t.lease_seconds,
           (SELECT r.id FROM review_reviewresponse r
             WHERE r.task_id = ra.task_id AND r.reviewer_id = ra.user_id AND r.status = 'leased'
             ORDER BY r.leased_at DESC LIMIT 1) AS held_id
      FROM review_reviewassignment ra JOIN review_reviewtask t ON t.id = ra.task_id
     WHERE ra.task_id = %(task)s AND ra.user_id = %(user)s
),
renewed AS (                                           -- 2. one item in hand: renew its lease
    UPDATE review_reviewresponse r
       SET lease_expires_at = %(now)s + a.lease_seconds * interval '1 second'
      FROM a
     WHERE r.id = a.held_id AND r.status = 'leased' AND a.status = 'open'
    RETURNING r.id, r.item_id, r.lease_expires_at
),
pick AS MATERIALIZED (                                 -- 3. the first free item ahead of the cursor
    SELECT i.id FROM review_reviewitem i
     WHERE i.task_id = %(task)s AND i.open AND i.example_index > (SELECT a."cursor" FROM a)
       AND EXISTS (SELECT 1 FROM a WHERE a.status = 'open' AND a.held_id IS NULL)
       AND NOT EXISTS (SELECT 1 FROM review_reviewresponse r WHERE r.item_id = i.id AND r.reviewer_id = %(user)s)
       AND (NOT i.reserved OR EXISTS (SELECT 1 FROM review_itemreservation x
                                       WHERE x.item_id = i.id AND x.user_id = %(user)s))
     ORDER BY i.example_index
     LIMIT 1
       FOR UPDATE OF i SKIP LOCKED
),
taken AS (                                             --    one more holder, on the newest row version
    UPDATE review_reviewitem i
       SET taken = i.taken + 1, open = (i.taken + 1 < a.overlap AND i.state <> 'resolved')
      FROM pick, a
     WHERE i.id = pick.id
    RETURNING i.*
),
lease AS (                                             --    the lease
    INSERT INTO review_reviewresponse (task_id, item_id, reviewer_id, status, decision, labels, rating, comment,
                                       turn_decisions, edited_turns, base_revision, leased_at, lease_expires_at)
    SELECT %(task)s, t.id, %(user)s, 'leased', '', '[]', NULL, '', '{{}}', '[]', t.revision, %(now)s,
           %(now)s + a.lease_seconds * interval '1 second'
      FROM taken t, a
    RETURNING id, item_id, lease_expires_at
),
moved AS (                                             --    the caller's cursor
    UPDATE review_reviewassignment ra SET "cursor" = t.example_index
      FROM taken t, a
     WHERE ra.id = a.id
),
got AS (                                               -- 4. the item (as updated) and its lease
    SELECT l.id AS lease_id, l.lease_expires_at, true AS new, {_item_cols}
      FROM lease l JOIN taken t ON t.id = l.item_id
    UNION ALL
    SELECT r.id, r.lease_expires_at, false, {_held_cols}
      FROM renewed r JOIN review_reviewitem i ON i.id = r.item_id
)
SELECT a.status, a.held_id, got.*, {_example_cols}
  FROM a
  LEFT JOIN got ON true
  LEFT JOIN datasets_example e ON e.id = got.example_id
"""


@dataclass
class Next:
    status: str
    item: ReviewItem | None
    new: bool = False  # a new lease (False: the held one, renewed)
    held_vanished: bool = False  # the caller's lease ended while we looked (reclaimed): ask the ORM path


def _json(value):
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def next_in_one_statement(*, task_id: int, user, now) -> Next | None:
    with connection.cursor() as cur:
        cur.execute(NEXT_SQL, {"task": task_id, "user": user.pk, "now": now})
        row = cur.fetchone()
    return _from_row(row, task_id, user)


def _from_row(row, task_id: int, user) -> Next | None:
    if row is None:
        return None
    status, held_id, lease_id, expires, new = row[:5]
    if lease_id is None:
        return Next(status=status, item=None, held_vanished=held_id is not None and status == "open")
    n = len(ITEM_COLUMNS)
    values = row[5:5 + n]
    item = ReviewItem.from_db(connection.alias, ITEM_COLUMNS,
                              [_json(v) if c in _ITEM_JSON else v for c, v in zip(ITEM_COLUMNS, values)])
    ex_values = row[5 + n:]
    item.example = Example.from_db(connection.alias, ["id", *EXAMPLE_COLUMNS],
                                   [item.example_id, *(_json(v) if c in _EXAMPLE_JSON else v
                                                       for c, v in zip(EXAMPLE_COLUMNS, ex_values))])
    item.lease = ReviewResponse.from_db(
        connection.alias, ["id", "task_id", "item_id", "reviewer_id", "status", "lease_expires_at"],
        [lease_id, task_id, item.pk, user.pk, ReviewResponse.Status.LEASED, expires])
    return Next(status=status, item=item, new=bool(new))
