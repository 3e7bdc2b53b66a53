-- Polling (SPEC.md, "Webhooks managed by Bitgate, and polling"): for a
-- repository with no working hook, Bitgate reads its branch heads every
-- BITGATE_POLL_INTERVAL and turns a moved head into the events of a push.

-- The heads last read, per integration and repository. A repository's rows
-- exist only while it is polled: a hook that works again ends its polling
-- and its rows go, so that polling again starts from what Bitbucket has
-- then (the hook delivered the changes in between).
CREATE TABLE branch_heads (
    integration_id uuid NOT NULL CONSTRAINT branch_heads_integration_id_fkey
                       REFERENCES integrations (id) ON DELETE CASCADE,
    repository_id  text NOT NULL,
    branch         text NOT NULL,
    commit         text NOT NULL,
    read_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, repository_id, branch)
);

-- Bitbucket asked to wait (429): no polling for the integration until then.
ALTER TABLE integrations ADD COLUMN polling_paused_until timestamptz;

-- A moved head is recorded in the delivery log as a delivery whose
-- signature is `poll` (nothing signed it: Bitgate read it itself).
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_signature;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_signature
    CHECK (signature IN ('valid', 'valid_previous', 'missing', 'mismatch', 'unsigned_ping', 'unchecked', 'poll'));

-- The repositories polled now: one a stack uses, of an integration that
-- allows polling, whose hook does not work (SPEC: webhooks disabled,
-- failing, not permitted, or missing). The one place that rule lives.
CREATE VIEW polled_repositories AS
    SELECT h.integration_id, h.repository_id, h.repository_name
    FROM repository_hooks h JOIN integrations i ON i.id = h.integration_id
    WHERE NOT i.disable_polling
      AND h.state IN ('failing', 'not_permitted', 'not_managed', 'missing')
      AND EXISTS (SELECT FROM stacks s WHERE s.integration_id = h.integration_id AND s.repository_id = h.repository_id);
