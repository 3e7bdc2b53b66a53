-- Bitgate's webhook in each repository an integration's stacks use, as the
-- reconciler last found and left it (SPEC.md, "Webhooks managed by
-- Bitgate"). A row is written by the first check of a repository; the
-- repository's stacks show no hook state until then.
CREATE TABLE repository_hooks (
    integration_id  uuid NOT NULL CONSTRAINT repository_hooks_integration_id_fkey
                        REFERENCES integrations (id) ON DELETE CASCADE,
    -- Bitbucket's stable id of the repository, as stacks keep it.
    repository_id   text NOT NULL,
    repository_name text NOT NULL,
    state           text NOT NULL CONSTRAINT repository_hooks_state
                        CHECK (state IN ('installed', 'missing', 'differs', 'failing', 'not_permitted', 'not_managed')),
    message         text NOT NULL,
    -- Bitbucket's id of Bitgate's hook (Data Center's number, Cloud's
    -- UUID): the hook is still found after the integration is renamed.
    hook_id         text,
    -- SHA-256 of the secret Bitgate last wrote into the hook: Cloud never
    -- tells a hook's secret, so a rotation is known by this alone.
    secret_digest   bytea,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, repository_id)
);

-- A job asked for again while it runs (a stack created while its
-- repository is being reconciled) runs once more when it ends, instead of
-- the request being lost to the pending job's unique key.
ALTER TABLE jobs ADD COLUMN rerun boolean NOT NULL DEFAULT false;
