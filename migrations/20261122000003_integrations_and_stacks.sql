-- Integrations (a named connection to one Bitbucket), their Data Center
-- credentials, and the stacks that use them. Secrets are sealed by the
-- application (AES-256-GCM, key id beside each value, row bound as
-- associated data); the database never sees them in clear.

CREATE TABLE integrations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CONSTRAINT integrations_name_length CHECK (char_length(name) BETWEEN 1 AND 63),
    -- The webhook endpoint is derived from the slug: neither ever changes.
    slug                text NOT NULL CONSTRAINT integrations_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    provider            text NOT NULL CONSTRAINT integrations_provider CHECK (provider IN ('bitbucket_cloud', 'bitbucket_datacenter')),
    -- Null: the default integration of its provider, usable by every space.
    space_id            uuid CONSTRAINT integrations_space_id_fkey REFERENCES spaces (id) ON DELETE RESTRICT,
    labels              text[] NOT NULL DEFAULT '{}',
    description         text NOT NULL DEFAULT '' CONSTRAINT integrations_description_length CHECK (char_length(description) <= 10000),
    use_git_checkout    boolean NOT NULL DEFAULT false,
    commit_status       boolean NOT NULL DEFAULT true,
    status_details      boolean NOT NULL DEFAULT true,
    vcs_checks          text NOT NULL DEFAULT 'individual' CONSTRAINT integrations_vcs_checks CHECK (vcs_checks IN ('individual', 'aggregated', 'all')),
    webhook_secret_key  text NOT NULL,
    webhook_secret      bytea NOT NULL,
    -- During a rotation's grace period, the secret it replaced.
    previous_webhook_secret_key text,
    previous_webhook_secret     bytea,
    previous_secret_valid_until timestamptz,
    health_state        text NOT NULL CONSTRAINT integrations_health_state CHECK (health_state IN ('connected', 'pending_authorization', 'error')),
    health_message      text NOT NULL DEFAULT '',
    health_checked_at   timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    -- Who created it, as shown (kept when the user is gone).
    created_by_label    text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX integrations_name_key ON integrations (lower(name));
CREATE UNIQUE INDEX integrations_slug_key ON integrations (slug);
-- At most one default per provider.
CREATE UNIQUE INDEX integrations_one_default ON integrations (provider) WHERE space_id IS NULL;
CREATE INDEX integrations_space_id ON integrations (space_id);
CREATE INDEX integrations_created_at ON integrations (created_at DESC, id DESC);

CREATE TABLE datacenter_credentials (
    integration_id   uuid PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    api_url          text NOT NULL,
    user_facing_url  text NOT NULL,
    username         text NOT NULL,
    access_token_key text NOT NULL,
    access_token     bytea NOT NULL,
    -- Shown so that an admin can tell which token is stored.
    access_token_last4 text NOT NULL,
    -- A CA's certificate is public: stored as given.
    ca_certificate   text
);

CREATE TABLE stacks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CONSTRAINT stacks_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    space_id        uuid NOT NULL CONSTRAINT stacks_space_id_fkey REFERENCES spaces (id) ON DELETE RESTRICT,
    provider        text NOT NULL CONSTRAINT stacks_provider CHECK (provider IN ('bitbucket_cloud', 'bitbucket_datacenter')),
    -- Null: detached (its integration was deleted); it can be attached to
    -- another integration of the same provider.
    integration_id  uuid REFERENCES integrations (id) ON DELETE SET NULL,
    -- Bitbucket's stable id (Data Center: the repository id; Cloud: its
    -- UUID), with the human name beside it.
    repository_id   text NOT NULL,
    repository_name text NOT NULL,
    branch          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by_label text NOT NULL
);
CREATE UNIQUE INDEX stacks_name_key ON stacks (space_id, lower(name));
CREATE INDEX stacks_integration_id ON stacks (integration_id);
CREATE INDEX stacks_repository ON stacks (provider, repository_id);
