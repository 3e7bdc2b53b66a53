-- Build statuses Bitgate keeps on commits in Bitbucket, and the log of
-- every call it makes there.

-- What each status should show (`revision` counts its changes) and what
-- was last sent. One row per (integration, repository, commit, key), and
-- one job per row: a status is sent by one job at a time, always its
-- latest revision, so an older state never overwrites a newer one.
CREATE TABLE commit_statuses (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id  uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- The stack of an individual status; null for the aggregate of a commit.
    stack_id        uuid REFERENCES stacks (id) ON DELETE CASCADE,
    repository_id   text NOT NULL,
    repository_name text NOT NULL,
    commit          text NOT NULL,
    branch          text,
    kind            text NOT NULL CONSTRAINT commit_statuses_kind CHECK (kind IN ('tracked', 'proposed')),
    key             text NOT NULL CONSTRAINT commit_statuses_key_length CHECK (char_length(key) BETWEEN 1 AND 40),
    name            text NOT NULL,
    state           text NOT NULL CONSTRAINT commit_statuses_state
                        CHECK (state IN ('in_progress', 'successful', 'failed', 'stopped')),
    url             text NOT NULL,
    description     text NOT NULL,
    revision        bigint NOT NULL DEFAULT 1,
    sent_revision   bigint NOT NULL DEFAULT 0,
    sent            text NOT NULL DEFAULT 'pending' CONSTRAINT commit_statuses_sent
                        CHECK (sent IN ('pending', 'sent', 'failed')),
    message         text,
    -- Since when the latest revision waits to be sent: retries stop 24 hours after.
    pending_since   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT commit_statuses_key UNIQUE (integration_id, repository_id, commit, key)
);
CREATE INDEX commit_statuses_stack ON commit_statuses (stack_id, commit, kind);

-- Every call to Bitbucket on the platform loop's behalf: what, where, the
-- answer. Never a secret: the path without host or query, and Bitbucket's
-- message quoted short.
CREATE TABLE outbound_calls (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at              timestamptz NOT NULL DEFAULT now(),
    integration_id  uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    stack_id        uuid REFERENCES stacks (id) ON DELETE SET NULL,
    what            text NOT NULL,
    method          text NOT NULL,
    path            text NOT NULL,
    -- Null: no answer (the network, the timeout).
    status          integer,
    ok              boolean NOT NULL,
    message         text,
    attempt         integer NOT NULL
);
CREATE INDEX outbound_calls_integration ON outbound_calls (integration_id, at DESC, id DESC);
CREATE INDEX outbound_calls_stack ON outbound_calls (stack_id, at DESC, id DESC);

-- Job workers wake when jobs are queued, in whichever process queued them.
CREATE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bitgate_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_queued AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();
