-- When the worker last moved webhooks on, by stage ('normalise', 'apply'). /readyz calls the
-- pipeline stalled only when an accepted webhook has waited STALL_SECONDS and nothing has moved
-- for as long: a backlog being worked off after a restart is behind, not stuck.
CREATE TABLE pipeline_progress (
    stage text PRIMARY KEY,
    at    timestamptz NOT NULL
);
