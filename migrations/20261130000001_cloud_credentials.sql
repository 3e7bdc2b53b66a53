-- Bitbucket Cloud: an OAuth consumer's credentials and the tokens it got,
-- the OAuth flows waiting for their callback, and the system as an actor
-- (the token refresh job leaves audit entries too).

CREATE TABLE cloud_credentials (
    integration_id     uuid PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    workspace          text NOT NULL,
    client_id          text NOT NULL,
    client_secret_key  text NOT NULL,
    client_secret      bytea NOT NULL,
    mode               text NOT NULL CONSTRAINT cloud_credentials_mode CHECK (mode IN ('authorization_code', 'client_credentials')),
    -- Null until the first token (authorization_code: until the callback).
    access_token_key   text,
    access_token       bytea,
    -- authorization_code only; Bitbucket rotates it on every use.
    refresh_token_key  text,
    refresh_token      bytea,
    token_expires_at   timestamptz,
    -- When the refresh token was last spent: an unused one expires after 3 months.
    token_obtained_at  timestamptz,
    -- What Bitbucket granted, such as {account, repository}.
    scopes             text[] NOT NULL DEFAULT '{}',
    -- The Bitbucket account the tokens act as, and the Bitgate user who connected it.
    authorized_by      text,
    authorized_by_label text,
    authorized_at      timestamptz
);
CREATE INDEX cloud_credentials_token_expires_at ON cloud_credentials (token_expires_at);

-- An authorization flow waiting for Bitbucket's redirect: found by the hash
-- of its `state`, used once, valid 10 minutes, bound to the integration, to
-- the user, and (when a browser started it) to that browser's session.
CREATE TABLE oauth_flows (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_hash       text NOT NULL CONSTRAINT oauth_flows_state_hash_key UNIQUE,
    integration_id   uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the starting session's CSRF token; null when started through the API.
    session_binding  text,
    pkce_verifier_key text NOT NULL,
    pkce_verifier    bytea NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_flows_expires_at ON oauth_flows (expires_at);

ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind
    CHECK (actor_kind IN ('user', 'token', 'cli', 'anonymous', 'system'));
