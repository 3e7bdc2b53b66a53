-- API tokens (stored as SHA-256, shown once) and the background job table.

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CONSTRAINT api_tokens_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    token_sha256 bytea NOT NULL CONSTRAINT api_tokens_token_sha256_key UNIQUE,
    -- The first characters after `bgt_`, so that a user can tell tokens apart.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id, created_at DESC);

-- Work any Bitgate process may take: claimed with FOR UPDATE SKIP LOCKED so
-- that no two processes take the same job; retried with backoff.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    last_error   text,
    locked_until timestamptz,
    -- At most one pending job per key (periodic jobs use their kind).
    unique_key   text CONSTRAINT jobs_unique_key UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_due ON jobs (run_at);
