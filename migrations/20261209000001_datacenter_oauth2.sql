-- Bitbucket Data Center by OAuth 2.0 (SPEC.md, "Data Center by OAuth"): an
-- incoming application link's client id and secret, and the tokens an
-- admin's approval got, refreshed like Cloud's. `auth` says how the
-- integration authenticates; the access token column holds the bearer
-- token of either kind (an HTTP access token, or OAuth's current one).
ALTER TABLE datacenter_credentials
    ADD COLUMN auth text NOT NULL DEFAULT 'access_token'
        CONSTRAINT datacenter_credentials_auth CHECK (auth IN ('access_token', 'oauth2')),
    -- Null for OAuth 2.0 until the first approval (and after the chain broke).
    ALTER COLUMN access_token_key DROP NOT NULL,
    ALTER COLUMN access_token DROP NOT NULL,
    -- HTTP access tokens only: OAuth's are never shown, even in part.
    ALTER COLUMN access_token_last4 DROP NOT NULL,
    -- OAuth 2.0: the account that approved, learned at the callback.
    ALTER COLUMN username DROP NOT NULL,
    ADD COLUMN client_id text,
    ADD COLUMN client_secret_key text,
    ADD COLUMN client_secret bytea,
    ADD COLUMN refresh_token_key text,
    ADD COLUMN refresh_token bytea,
    ADD COLUMN token_expires_at timestamptz,
    -- When the refresh token was last spent: an unused one expires (90 days by default).
    ADD COLUMN token_obtained_at timestamptz,
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{}',
    -- The Bitgate user who connected it (the Bitbucket account is `username`).
    ADD COLUMN authorized_by_label text,
    ADD COLUMN authorized_at timestamptz,
    ADD CONSTRAINT datacenter_credentials_kind CHECK (CASE auth
        WHEN 'access_token' THEN username IS NOT NULL AND access_token IS NOT NULL AND access_token_last4 IS NOT NULL AND client_id IS NULL
        ELSE client_id IS NOT NULL AND client_secret IS NOT NULL AND access_token_last4 IS NULL END);
CREATE INDEX datacenter_credentials_token_expires_at ON datacenter_credentials (token_expires_at)
    WHERE token_expires_at IS NOT NULL;
