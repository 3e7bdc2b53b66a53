-- The request that caused a job (its X-Request-Id), so that the job's log
-- lines carry it too. Nullable, added without a default: safe while an
-- older Bitgate still runs beside this one (it neither reads nor writes it).
ALTER TABLE jobs ADD COLUMN request_id text;
