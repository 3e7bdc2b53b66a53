-- A form posted twice (a double click, a reload of its answer, a browser
-- sending it again) does its work once: each rendered form carries a token;
-- the first request with it claims it here and records where its answer
-- led, and a repeat waits for the first and is sent there. A new table: an
-- older Bitgate running beside this one never reads it.
CREATE TABLE form_submissions (
    token uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    redirect_to text
);
CREATE INDEX form_submissions_created_at ON form_submissions (created_at);
