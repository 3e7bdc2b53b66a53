-- The foundation: spaces, users and their roles, sessions, the first-admin
-- setup link, login rate limiting, and the audit log.

CREATE TABLE spaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    parent_id   uuid REFERENCES spaces (id) ON DELETE RESTRICT,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT spaces_name_key UNIQUE (name),
    CONSTRAINT spaces_name_length CHECK (char_length(name) BETWEEN 1 AND 63),
    -- `root` is the only space without a parent, and it cannot be re-parented.
    CONSTRAINT spaces_root_has_no_parent CHECK ((name = 'root') = (parent_id IS NULL))
);

INSERT INTO spaces (name, description) VALUES ('root', 'The whole account.');

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text NOT NULL,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_shape CHECK (email = lower(email) AND position('@' IN email) > 1),
    CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    space_id   uuid NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CONSTRAINT memberships_role CHECK (role IN ('read', 'write', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, user_id)
);
CREATE INDEX memberships_user_id ON memberships (user_id);

-- tower-sessions' PostgreSQL store, created here so that the whole schema
-- lives in migrations.
CREATE SCHEMA tower_sessions;
CREATE TABLE tower_sessions.session (
    id          text PRIMARY KEY NOT NULL,
    data        bytea NOT NULL,
    expiry_date timestamptz NOT NULL
);
CREATE INDEX session_expiry_date ON tower_sessions.session (expiry_date);

-- One-time links that let the first admin be created in the browser.
CREATE TABLE setup_tokens (
    token_sha256 bytea PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

-- Failed-login counters, per account and per client address, in fixed windows.
CREATE TABLE login_throttle (
    key               text PRIMARY KEY,
    window_started_at timestamptz NOT NULL,
    failures          integer NOT NULL
);

CREATE TABLE audit_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    actor_kind     text NOT NULL CONSTRAINT audit_events_actor_kind CHECK (actor_kind IN ('user', 'token', 'cli', 'anonymous')),
    actor_id       uuid,
    actor_label    text NOT NULL,
    action         text NOT NULL,
    target_kind    text,
    target_id      text,
    target_label   text,
    -- Scopes the event for space admins; null for account-wide events.
    space_id       uuid REFERENCES spaces (id) ON DELETE SET NULL,
    client_address inet,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at DESC);
CREATE INDEX audit_events_action ON audit_events (action, occurred_at DESC);
