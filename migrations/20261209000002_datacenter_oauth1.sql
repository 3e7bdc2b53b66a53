-- Bitbucket Data Center by the legacy OAuth 1.0a application link, RSA-SHA1
-- (SPEC.md, "Data Center by OAuth"): the consumer key Bitbucket's link
-- names, the integration's RSA key pair (the private key sealed like every
-- secret, the public key shown to paste into Bitbucket), and the access
-- token the three legs got, in `access_token` like the other kinds'.
ALTER TABLE datacenter_credentials
    DROP CONSTRAINT datacenter_credentials_auth,
    DROP CONSTRAINT datacenter_credentials_kind;
ALTER TABLE datacenter_credentials
    ADD CONSTRAINT datacenter_credentials_auth CHECK (auth IN ('access_token', 'oauth2', 'oauth1')),
    ADD COLUMN consumer_key text,
    ADD COLUMN private_key_key text,
    ADD COLUMN private_key bytea,
    ADD COLUMN public_key text,
    ADD CONSTRAINT datacenter_credentials_kind CHECK (CASE auth
        WHEN 'access_token' THEN username IS NOT NULL AND access_token IS NOT NULL AND access_token_last4 IS NOT NULL
                                 AND client_id IS NULL AND consumer_key IS NULL
        WHEN 'oauth2' THEN client_id IS NOT NULL AND client_secret IS NOT NULL AND access_token_last4 IS NULL
                           AND consumer_key IS NULL
        ELSE consumer_key IS NOT NULL AND private_key IS NOT NULL AND public_key IS NOT NULL
             AND client_id IS NULL AND access_token_last4 IS NULL END);

-- A flow of an OAuth 1.0a link waits with its request token (not a
-- secret: it travels in the authorize page's address) instead of a PKCE
-- verifier.
ALTER TABLE oauth_flows
    ALTER COLUMN pkce_verifier_key DROP NOT NULL,
    ALTER COLUMN pkce_verifier DROP NOT NULL,
    ADD COLUMN request_token text,
    ADD CONSTRAINT oauth_flows_kind CHECK ((pkce_verifier IS NULL) = (request_token IS NOT NULL));
