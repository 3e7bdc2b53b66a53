-- The platform loop (SPEC.md): stack triggers decide which events a
-- delivery makes; events go out to the platform through a feed; the
-- platform reports runs back.

-- Platform.sh's options, per stack, with SPEC's defaults.
ALTER TABLE stacks
    ADD COLUMN build_pull_requests  boolean NOT NULL DEFAULT true,
    ADD COLUMN all_branches         boolean NOT NULL DEFAULT false,
    ADD COLUMN prune_branches       boolean NOT NULL DEFAULT true,
    ADD COLUMN resync_pull_requests boolean NOT NULL DEFAULT false;

-- Triggers change what routing makes of a delivery: every process's cached
-- routes go, as for the repository and the branch.
DROP TRIGGER stacks_route_changed ON stacks;
CREATE TRIGGER stacks_route_changed
    AFTER INSERT OR DELETE OR UPDATE OF integration_id, repository_id, branch, build_pull_requests, all_branches,
                                        prune_branches, resync_pull_requests ON stacks
    FOR EACH ROW EXECUTE FUNCTION notify_webhook_endpoints();

-- What a stack should react to, derived once per (delivery, stack) by the
-- statement that stores the delivery.
--
-- The feed reads them in (tx, seq) order, and only those of transactions
-- older than every transaction still running (pg_snapshot_xmin): a
-- sequence number alone is taken when a row is written, not when it
-- commits, so a reader could pass a number whose transaction commits later
-- and never see it. Every transaction that can still commit has a tx at
-- least the reader's xmin, so nothing can appear behind a cursor.
CREATE TABLE events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigserial NOT NULL,
    tx              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at              timestamptz NOT NULL DEFAULT now(),
    type            text NOT NULL CONSTRAINT events_type
                        CHECK (type IN ('run.requested', 'branch.deleted', 'pull_request.closed')),
    kind            text CONSTRAINT events_kind
                        CHECK (CASE WHEN type = 'run.requested' THEN coalesce(kind IN ('tracked', 'proposed'), false)
                                    ELSE kind IS NULL END),
    resync          boolean NOT NULL DEFAULT false,
    stack_id        uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    -- Kept when the integration goes (its stacks are detached, not deleted).
    integration_id  uuid NOT NULL,
    -- Retained like deliveries: deleted with the delivery they came from.
    -- Null for a poll.
    delivery_id     uuid REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    repository_id   text NOT NULL,
    repository_name text NOT NULL,
    branch          text NOT NULL,
    commit          text,
    -- {id, source_branch, target_branch, source_commit, title, url}
    pull_request    jsonb
);
CREATE INDEX events_feed ON events (tx, seq);
CREATE INDEX events_stack ON events (stack_id, tx, seq);
CREATE INDEX events_delivery ON events (delivery_id);

-- Waiting readers wake when events commit, in whichever process wrote them
-- (a notification is delivered at commit, once per statement).
CREATE FUNCTION notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bitgate_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_written AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION notify_events();

-- The platform's reports of the work it does for a stack, by its own key.
CREATE TABLE runs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stack_id        uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    key             text NOT NULL CONSTRAINT runs_key_length CHECK (char_length(key) BETWEEN 1 AND 200),
    commit          text NOT NULL,
    kind            text NOT NULL CONSTRAINT runs_kind CHECK (kind IN ('tracked', 'proposed')),
    state           text NOT NULL CONSTRAINT runs_state
                        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'stopped')),
    url             text,
    title           text,
    summary         text,
    pull_request_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT runs_key UNIQUE (stack_id, key)
);
CREATE INDEX runs_stack ON runs (stack_id, created_at DESC);
CREATE INDEX runs_commit ON runs (commit);
