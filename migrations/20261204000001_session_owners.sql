-- Which user each logged-in browser session belongs to. tower-sessions keeps
-- a session's data as an opaque blob, so without this disabling a user could
-- not find, and delete, their sessions. A session's note goes with it.
CREATE TABLE session_owners (
    session_id text PRIMARY KEY REFERENCES tower_sessions.session (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX session_owners_user_id ON session_owners (user_id);
