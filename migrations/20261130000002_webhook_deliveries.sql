-- Every request to a webhook endpoint that names an integration (rejected
-- ones up to a cap per minute, then counted), what it meant, and the
-- stacks it matched.

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id  uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- X-Request-Id (Data Center) or X-Request-UUID (Cloud).
    request_id      text,
    event_key       text,
    repository_id   text,
    repository_name text,
    signature       text NOT NULL CONSTRAINT webhook_deliveries_signature
                    CHECK (signature IN ('valid', 'valid_previous', 'missing', 'mismatch', 'unsigned_ping', 'unchecked')),
    outcome         text NOT NULL CONSTRAINT webhook_deliveries_outcome
                    CHECK (outcome IN ('accepted', 'ignored', 'duplicate', 'rejected')),
    reason          text,
    -- The request's headers, the signature redacted.
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Accepted deliveries only.
    body            jsonb,
    -- The normalized event (accepted deliveries).
    event           jsonb,
    stacks          uuid[] NOT NULL DEFAULT '{}',
    duplicate_count integer NOT NULL DEFAULT 0,
    -- Set once matched to stacks (after the acknowledgement, by any process).
    routed_at       timestamptz
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (integration_id, received_at DESC, id DESC);
-- Only verified deliveries are deduplicated.
CREATE UNIQUE INDEX webhook_deliveries_request ON webhook_deliveries (integration_id, request_id)
    WHERE request_id IS NOT NULL AND signature IN ('valid', 'valid_previous') AND outcome <> 'duplicate';
CREATE INDEX webhook_deliveries_unrouted ON webhook_deliveries (received_at) WHERE routed_at IS NULL AND outcome = 'accepted';

-- Rejected requests recorded per integration and minute; past the cap they are counted only.
CREATE TABLE webhook_rejections (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    minute         timestamptz NOT NULL,
    recorded       integer NOT NULL DEFAULT 0,
    dropped        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (integration_id, minute)
);

ALTER TABLE stacks ADD COLUMN last_delivery_id uuid REFERENCES webhook_deliveries (id) ON DELETE SET NULL;
-- A push deleted the branch the stack tracks.
ALTER TABLE stacks ADD COLUMN branch_deleted boolean NOT NULL DEFAULT false;
