-- Writing an event costs less (scripts/bench-webhooks, a perf profile of
-- the one-client case: the event insert with its checks was most of what
-- routing added to a delivery).
--
-- 1. The statement that stores deliveries no longer notifies the events
--    feed by a trigger: the group-commit writer announces its events
--    itself, at most once per 10 ms (core/src/signal.rs). A notification
--    per batch woke every listening connection of every process for every
--    delivery. Other writers of events notify with their own transaction
--    (`pg_notify('bitgate_events', '')`).
DROP TRIGGER events_written ON events;
DROP FUNCTION notify_events();

-- 2. An event's stack and delivery exist when it is written: the one
--    statement that writes events inserts only those of the deliveries it
--    stored, for the stacks it has just updated (and so locked until it
--    commits). The foreign keys checked that again, one query per key per
--    event. What they did on delete stays, once per deleting statement.
ALTER TABLE events DROP CONSTRAINT events_stack_id_fkey, DROP CONSTRAINT events_delivery_id_fkey;

CREATE FUNCTION delete_events_of_stacks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events WHERE stack_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;
CREATE TRIGGER stacks_delete_events AFTER DELETE ON stacks REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_events_of_stacks();

CREATE FUNCTION delete_events_of_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events WHERE delivery_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_delete_events AFTER DELETE ON webhook_deliveries REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_events_of_deliveries();
