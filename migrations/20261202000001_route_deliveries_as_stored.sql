-- Deliveries are matched to stacks when they are stored, in the statement
-- that stores them, from the stacks each process keeps with its cached
-- webhook endpoints: no delivery is ever left unrouted, and none is
-- written twice (the routing job rewrote every accepted row, which cost a
-- quarter of the ingest rate).

-- Deliveries an earlier version left unrouted: matched here, as that job did.
UPDATE webhook_deliveries d SET stacks = ARRAY(
    SELECT s.id FROM stacks s
    WHERE s.integration_id = d.integration_id AND s.repository_id = d.repository_id
      AND (jsonb_typeof(d.event -> 'pull_request') = 'object'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(d.event -> 'refs') AS r
                      WHERE r ->> 'kind' = 'branch' AND r ->> 'name' = s.branch AND r ->> 'action' <> 'deleted'))
    ORDER BY s.id)
WHERE d.routed_at IS NULL AND d.outcome = 'accepted' AND d.event IS NOT NULL;

DROP INDEX webhook_deliveries_unrouted;
ALTER TABLE webhook_deliveries DROP COLUMN routed_at;
DELETE FROM jobs WHERE kind = 'webhooks.route_pending';

-- What receiving needs of an integration is its secrets and its stacks:
-- every change to a stack's routing tells every process, in the changing
-- transaction, whatever path made it (the API, the pages, an import).
-- Not on the columns routing itself writes (last_delivery_id,
-- branch_deleted), or every stored batch would empty every cache.
CREATE FUNCTION notify_webhook_endpoints() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bitgate_webhook_endpoints', coalesce(NEW.integration_id::text, OLD.integration_id::text, ''));
    RETURN NULL;
END
$$;
CREATE TRIGGER stacks_route_changed
    AFTER INSERT OR DELETE OR UPDATE OF integration_id, repository_id, branch ON stacks
    FOR EACH ROW EXECUTE FUNCTION notify_webhook_endpoints();
