-- A statement trigger fires for zero rows too: the statement that stores
-- a batch of deliveries inserts into events whether or not they make any,
-- and a statement inserting no job woke every job worker of every process
-- to look for one (16 transactions per delivery, when the delivery
-- statement queued jobs: half the ingest rate, scripts/bench-webhooks).
-- Readers and workers are woken only when rows were inserted.
CREATE OR REPLACE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM queued) THEN
        PERFORM pg_notify('bitgate_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER jobs_queued ON jobs;
CREATE TRIGGER jobs_queued AFTER INSERT ON jobs REFERENCING NEW TABLE AS queued
    FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();

CREATE OR REPLACE FUNCTION notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM written) THEN
        PERFORM pg_notify('bitgate_events', '');
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER events_written ON events;
CREATE TRIGGER events_written AFTER INSERT ON events REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events();
