-- Pull-request comments: the integration's `pr_comments` option, and the
-- one comment Bitgate keeps per (pull request, stack).

ALTER TABLE integrations
    ADD COLUMN pr_comments text NOT NULL DEFAULT 'failures'
        CONSTRAINT integrations_pr_comments CHECK (pr_comments IN ('off', 'failures', 'always'));

-- What the comment should say (`revision` counts its changes), what was
-- last sent, and Bitbucket's id (and Data Center's version) of it. One job
-- per row sends its latest revision, as for build statuses.
CREATE TABLE pull_request_comments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id   uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    stack_id         uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    -- The pull request's (target) repository: the stack's.
    repository_id    text NOT NULL,
    repository_name  text NOT NULL,
    pull_request_id  bigint NOT NULL,
    -- The run the comment speaks for, and its commit.
    run_id           uuid REFERENCES runs (id) ON DELETE SET NULL,
    commit           text NOT NULL,
    state            text NOT NULL CONSTRAINT pull_request_comments_state
                         CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'stopped')),
    -- A run of the stack on this pull request failed before: a success says it is fixed.
    failed_before    boolean NOT NULL DEFAULT false,
    body             text NOT NULL,
    revision         bigint NOT NULL DEFAULT 1,
    sent_revision    bigint NOT NULL DEFAULT 0,
    sent             text NOT NULL DEFAULT 'pending' CONSTRAINT pull_request_comments_sent
                         CHECK (sent IN ('pending', 'sent', 'failed', 'skipped')),
    message          text,
    -- Bitbucket's comment, once created.
    remote_id        bigint,
    remote_version   bigint,
    -- Set, and committed, before the comment is created: a process that
    -- dies between Bitbucket's answer and recording the id leaves this
    -- set, and the next attempt looks for the comment before posting one.
    create_started   boolean NOT NULL DEFAULT false,
    pending_since    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pull_request_comments_one UNIQUE (stack_id, repository_id, pull_request_id)
);
CREATE INDEX pull_request_comments_integration ON pull_request_comments (integration_id, updated_at DESC);
