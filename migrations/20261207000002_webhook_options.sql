-- The webhook options belong to every integration, Data Center and Cloud
-- alike (SPEC: "Webhooks managed by Bitgate, and polling"):
--   manage_webhooks  Bitgate keeps its webhook in each repository a stack uses
--                    (CDS's disableWebHooksCreation is its opposite);
--   disable_polling  CDS's disablePolling;
--   disable_webhooks CDS's disableWebHooks, which keeps management off.
-- Until now CDS's two were kept on datacenter_credentials, for Data Center
-- integrations imported from CDS only: they move here, with their values.

ALTER TABLE integrations
    ADD COLUMN manage_webhooks  boolean NOT NULL DEFAULT true,
    ADD COLUMN disable_polling  boolean NOT NULL DEFAULT false,
    ADD COLUMN disable_webhooks boolean NOT NULL DEFAULT false;

UPDATE integrations i
   SET disable_polling = d.disable_polling,
       disable_webhooks = d.disable_webhooks,
       -- Webhooks disabled are not Bitgate's to manage.
       manage_webhooks = NOT d.disable_webhooks
  FROM datacenter_credentials d
 WHERE d.integration_id = i.id
   AND (d.disable_polling OR d.disable_webhooks);

-- Checked by core (integrations::input::options) with a message saying what
-- to fix; this keeps any other writer from storing both.
ALTER TABLE integrations
    ADD CONSTRAINT integrations_managed_webhooks_enabled CHECK (NOT (manage_webhooks AND disable_webhooks));

ALTER TABLE datacenter_credentials
    DROP COLUMN disable_polling,
    DROP COLUMN disable_webhooks;
