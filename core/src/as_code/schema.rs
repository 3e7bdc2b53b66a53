//! The JSON Schema of the integrations file (`bitgate integrations
//! schema`), for editors and linters. The reader in [`super::file`] is
//! what decides; a test keeps the two naming the same fields.

use serde_json::{json, Value};

use super::file::VERSION;

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn flag(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn flag_defaulting(default: bool, description: &str) -> Value {
    json!({"type": "boolean", "default": default, "description": description})
}

/// Where files exported before the webhook options were every integration's
/// put two of them; still read, `options` winning.
fn moved_to_options(option: &str) -> Value {
    json!({
        "type": "boolean",
        "deprecated": true,
        "description": format!("Read from older files: write options.{option} instead, which wins when both are given."),
    })
}

/// The schema (JSON Schema 2020-12).
pub fn schema() -> Value {
    let secret = "A secret: never exported. Left out, or left as its \"<fill in…>\" placeholder, an integration that exists keeps the stored one.";
    let oauth2 = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["client_id"],
        "description": "auth: oauth2 only. The incoming application link's client (Bitbucket's \"External application\", 7.20 and later). Imported, the integration waits for an admin to click Connect and approve it in Bitbucket.",
        "properties": {
            "client_id": text("The client ID Bitbucket shows for the application link."),
            "client_secret": text(secret),
        }
    });
    // The consumer key alone: the key pair is Bitgate's to make, and the
    // reader refuses either half of it.
    let oauth1 = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "auth: oauth1 only. The legacy OAuth 1.0a application link (RSA-SHA1). Bitgate makes the link's key pair itself and never exports its private key: imported, a new link gets a new key pair, whose public key the integration's page shows to paste into Bitbucket's application link (incoming authentication) before an admin clicks Connect. An integration that exists keeps its key pair.",
        "properties": {
            "consumer_key": text("The consumer key of Bitbucket's application link. Left out: the stored one for a link that exists, bitgate-{slug} otherwise. It cannot change once the link exists."),
        }
    });
    let not_given =
        |fields: &[&str]| json!({"anyOf": fields.iter().map(|f| json!({"required": [f]})).collect::<Vec<_>>()});
    // The fields of one way to authenticate only: the reader refuses the
    // other ways', and wants `username` with an access token alone.
    let datacenter = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["api_url"],
        "properties": {
            "api_url": text("The base URL Bitgate calls, such as https://bitbucket.example.com."),
            "user_facing_url": text("The URL people open, when it is not the API URL."),
            "auth": {
                "enum": ["access_token", "oauth2", "oauth1"],
                "default": "access_token",
                "description": "How Bitgate authenticates: an HTTP access token (username and access_token), an OAuth 2.0 application link (oauth2), or a legacy OAuth 1.0a application link (oauth1); a link is connected in the browser after the import.",
            },
            "username": text("auth: access_token only, and required there: the user the HTTP access token belongs to. An application link acts as whoever approves it."),
            "access_token": text(&format!("auth: access_token only. {secret}")),
            "oauth2": oauth2,
            "oauth1": oauth1,
            "ca_certificate": text("A private CA's certificate (PEM) for the API URL."),
            "disable_polling": moved_to_options("disable_polling"),
            "disable_webhooks": moved_to_options("disable_webhooks"),
        },
        "if": {"required": ["auth"], "properties": {"auth": {"const": "oauth2"}}},
        "then": {"required": ["oauth2"], "not": not_given(&["username", "access_token", "oauth1"])},
        "else": {
            "if": {"required": ["auth"], "properties": {"auth": {"const": "oauth1"}}},
            "then": {"not": not_given(&["username", "access_token", "oauth2"])},
            "else": {"required": ["username"], "not": not_given(&["oauth2", "oauth1"])},
        },
    });
    let cloud = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["workspace", "client_id"],
        "properties": {
            "workspace": text("The Bitbucket Cloud workspace's ID."),
            "client_id": text("The OAuth consumer's key."),
            "client_secret": text(secret),
            "mode": {"enum": ["authorization_code", "client_credentials"], "default": "authorization_code"},
        }
    });
    let options = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "use_git_checkout": flag("Check out with git instead of downloading archives."),
            "commit_status": flag("Report commit statuses to Bitbucket."),
            "status_details": flag("Link statuses to their runs."),
            "vcs_checks": {"enum": ["individual", "aggregated", "all"]},
            "pr_comments": {
                "enum": ["off", "failures", "always"],
                "default": "failures",
                "description": "Bitgate's comment on a pull request, one per stack: never, from the first failed run, or from the first run.",
            },
            "manage_webhooks": flag_defaulting(true, "Bitgate creates and repairs its webhook in each repository a stack uses (it needs REPO_ADMIN on Data Center, the consumer's Webhooks permission on Cloud). CDS's disableWebHooksCreation is its opposite. Cannot be true with disable_webhooks; left out, disable_webhooks: true turns it off."),
            "disable_polling": flag_defaulting(false, "Never read branch heads to make up for webhooks that do not arrive (CDS's disablePolling)."),
            "disable_webhooks": flag_defaulting(false, "Bitbucket's webhooks are not used: Bitgate polls instead, unless disable_polling says not to (CDS's disableWebHooks)."),
        }
    });
    let entry = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "provider"],
        "properties": {
            "name": text("Unique; the webhook endpoint is made from it."),
            "provider": {"enum": ["bitbucket_datacenter", "bitbucket_cloud"]},
            "scope": {"enum": ["default", "space"], "description": "Left out: the space named, or the import's space."},
            "space": text("The space's name (scope: space)."),
            "description": text("Markdown."),
            "labels": {"type": "array", "items": {"type": "string"}},
            "options": options,
            "datacenter": datacenter,
            "cloud": cloud,
            "webhook_secret": text("The secret Bitbucket's webhook is set up with, to keep it working when moving between Bitgate instances."),
        }
    });
    let cds = json!({
        "type": "object",
        "description": "An entry in the shape of CDS's `cdsctl project vcs import` files.",
        "additionalProperties": false,
        "required": ["name", "type", "url", "auth"],
        "properties": {
            "version": {"type": "string"},
            "name": {"type": "string"},
            "type": {"const": "bitbucketserver"},
            "description": {"type": "string"},
            "url": {"type": "string"},
            "auth": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"user": {"type": "string"}, "username": {"type": "string"}, "token": {"type": "string"}},
            },
            "options": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "disableStatus": {"type": "boolean"},
                    "disableStatusDetails": {"type": "boolean"},
                    "disablePolling": {"type": "boolean"},
                    "disableWebHooks": {"type": "boolean"},
                    "disableWebHooksCreation": {"type": "boolean"},
                }
            }
        }
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Bitgate integrations",
        "$defs": {"entry": entry, "cds": cds},
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["version", "integrations"],
                "properties": {
                    "version": {"const": VERSION},
                    "integrations": {"type": "array", "items": {"oneOf": [{"$ref": "#/$defs/entry"}, {"$ref": "#/$defs/cds"}]}},
                }
            },
            {"$ref": "#/$defs/cds"},
        ]
    })
}
