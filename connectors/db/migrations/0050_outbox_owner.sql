-- The worker that wrote an outbox row, by the key of the advisory lock it holds while it
-- lives (NULL: written by a command, or before this column). A row whose writer is gone is
-- published by the next worker at once, rather than once it is STALE_OUTBOX_S old: after a
-- worker crash, updates and plans waited about 20 s.
ALTER TABLE update_outbox ADD COLUMN owner bigint;
