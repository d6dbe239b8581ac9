-- One history backfill per shop: where it stands, so a crash resumes it and the dashboard can
-- show its progress.
CREATE TABLE backfills (
    shop            text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    since           date NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    operation_id    text,             -- the bulk export being read (resume skips what it applied)
    orders_total    bigint,
    orders_applied  bigint NOT NULL DEFAULT 0,
    lines_applied   bigint NOT NULL DEFAULT 0,
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
