-- CDS's disablePolling and disableWebHooks, imported with a Data Center
-- integration: kept and shown until Bitgate polls and sets webhooks up itself.
ALTER TABLE datacenter_credentials
    ADD COLUMN disable_polling  boolean NOT NULL DEFAULT false,
    ADD COLUMN disable_webhooks boolean NOT NULL DEFAULT false;
