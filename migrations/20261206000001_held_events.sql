-- Bitbucket Cloud names a pull request's source commit by its first 12
-- hex digits, and an event carries all 40. Such an event is stored
-- `held` with what the delivery said, out of the feed, and an outbound
-- job asks Cloud for the full id; it then gives the event its commit and
-- a new place in the feed (its own transaction's tx, a new seq), where
-- every reader will find it (readable at its old place, it would sit
-- behind cursors already past it).
ALTER TABLE events ADD COLUMN held boolean NOT NULL DEFAULT false;
CREATE INDEX events_held ON events (delivery_id) WHERE held;
