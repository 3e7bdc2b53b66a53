//! The integrations file: what `bitgate integrations export` writes and
//! `import` reads (the browser and the API read the same). YAML, version 1:
//!
//! ```yaml
//! version: 1
//! integrations:
//!   - name: dc-main
//!     provider: bitbucket_datacenter
//!     scope: space            # or default: the provider's default for every space
//!     space: platform         # the space's name (scope: space)
//!     datacenter: {api_url: …, username: …, access_token: "<fill in: …>"}
//!   - name: dc-linked
//!     provider: bitbucket_datacenter
//!     scope: default
//!     datacenter:         # an OAuth 2.0 application link: connected in the browser after the import
//!       api_url: …
//!       auth: oauth2      # access_token when left out
//!       oauth2: {client_id: …, client_secret: "<fill in: …>"}
//!   - name: dc-legacy
//!     provider: bitbucket_datacenter
//!     space: platform
//!     datacenter:         # a legacy OAuth 1.0a application link: Bitgate makes its key pair
//!       api_url: …
//!       auth: oauth1
//!       oauth1: {consumer_key: bitgate-dc-legacy}   # optional: bitgate-{slug} when left out
//! ```
//!
//! Secrets are never exported: a placeholder names each one to fill in. A
//! secret left out (or left as its placeholder) keeps the one stored when
//! the integration exists already, and is required when it does not. An
//! OAuth 1.0a link's key pair is neither exported nor read: it is Bitgate's
//! own, made when the link is, and its private key never leaves Bitgate.
//! Entries in the shape of CDS's `cdsctl project vcs import` files
//! (`type: bitbucketserver`) are read too, alone or in the list.
//!
//! Reading collects every problem of the file (with its place: line and
//! column for the YAML itself, the path of the field otherwise) instead of
//! stopping at the first, so that one attempt shows everything to fix.
//! What a file stands for is bounded, aliases included ([`super::yaml`]).

use std::fmt::{self, Write};

use serde::Serialize;

use super::yaml::{self, Mapping, Value};
use crate::{
    integrations::{input, DataCenterAuth, Options, PrComments, Provider, VcsChecks},
    secret::Secret,
    validation::Problems,
};

/// The version this Bitgate writes and reads.
pub const VERSION: u64 = 1;
/// Files larger than this are refused unread.
pub const MAX_FILE: usize = 1024 * 1024;
/// Entries a file may hold at most (each may cost a connection check).
pub const MAX_ENTRIES: usize = 500;
/// Characters of an entry's name shown in the places of its problems.
const MAX_NAME_SHOWN: usize = 64;
/// What a secret placeholder starts with.
pub const PLACEHOLDER: &str = "<fill in";

/// One integration as the file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub provider: Provider,
    pub scope: Scope,
    pub description: String,
    pub labels: Vec<String>,
    pub options: Options,
    pub credentials: Credentials,
    /// Keeps the webhooks already set up in Bitbucket working when moving
    /// between Bitgate instances; left out: kept (or made, when new).
    pub webhook_secret: Option<Secret<String>>,
}

/// Where an entry belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The provider's default integration, for every space.
    Default,
    /// The space of this name.
    Space(String),
    /// Not said (CDS entries never say): the space the import is given,
    /// the root space when none is.
    Unstated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Only the fields of the way `auth` names are given: the reader
    /// refuses the other ways', so an entry is an access token
    /// (`username`, `access_token`), an OAuth 2.0 link (`oauth2`) or an
    /// OAuth 1.0a link (`oauth1`).
    DataCenter {
        api_url: String,
        /// Left out: the API URL.
        user_facing_url: Option<String>,
        /// `access_token` when left out.
        auth: DataCenterAuth,
        /// The user the access token belongs to (required with one). `None`
        /// for an application link, which acts as whoever approves it in
        /// Bitbucket: that account is not configuration.
        username: Option<String>,
        /// Access tokens only. Left out or a placeholder: the stored one.
        access_token: Option<Secret<String>>,
        /// OAuth 2.0 only: the application link's client.
        oauth2: Option<OAuth2Link>,
        /// OAuth 1.0a only, and always there with it: the link's consumer key.
        oauth1: Option<OAuth1Link>,
        ca_certificate: Option<String>,
    },
    Cloud {
        workspace: String,
        client_id: String,
        /// Left out or a placeholder: the stored one.
        client_secret: Option<Secret<String>>,
        /// `authorization_code` or `client_credentials`.
        mode: String,
    },
}

/// A Data Center OAuth 2.0 application link's client, as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Link {
    pub client_id: String,
    /// Left out or a placeholder: the stored one.
    pub client_secret: Option<Secret<String>>,
}

/// A Data Center OAuth 1.0a application link, as the file gives it: its
/// consumer key alone. The key pair is not configuration: Bitgate makes one
/// per link (its private key never leaves Bitgate; its public key is on the
/// integration's page, to paste into Bitbucket), so an import into another
/// Bitgate makes the link a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth1Link {
    /// Left out: the stored one, or for a new link Bitgate's own
    /// (`bitgate-{slug}`, as the API gives).
    pub consumer_key: Option<String>,
}

/// Something wrong with the file, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `line 3, column 7` for the YAML itself; the field's path otherwise,
    /// such as `integrations[1] (dc-main).datacenter.api_url`.
    pub place: String,
    /// What kind of problem, as the API's error details name it: `invalid`,
    /// or the code of the rule refused (such as `token_required`).
    pub code: String,
    pub message: String,
}

impl Problem {
    /// A value the file gives that is not valid.
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self::coded(place, "invalid", message)
    }

    /// A rule refused, with its code.
    pub fn coded(place: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self { place: place.into(), code: code.to_owned(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Reads a file: its entries, or every problem it has.
pub fn parse(text: &str) -> Result<Vec<Entry>, Vec<Problem>> {
    Ok(read(text)?.into_iter().map(|(_, entry)| entry).collect())
}

/// Reads a file: its entries, each with its place in the file (to name in
/// the problems found later, when importing), or every problem it has.
pub fn read(text: &str) -> Result<Vec<(String, Entry)>, Vec<Problem>> {
    if text.len() > MAX_FILE {
        return Err(vec![Problem::new("file", "larger than 1 MiB")]);
    }
    let document = match yaml::load(text) {
        Ok(value) => value,
        Err(error) => {
            let place = format!("line {}, column {}", error.line, error.column);
            return Err(vec![Problem::new(place, error.message)]);
        }
    };
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    match &document {
        Value::Mapping(top) if top.contains_key("type") => {
            entries.extend(cds_entry(Fields::new("file", top), &mut problems).map(|e| ("file".to_owned(), e)));
        }
        Value::Mapping(top) => {
            let mut file = Fields::new("file", top);
            match file.get("version") {
                Some(Value::Number(n)) if n.parse::<u64>() == Ok(VERSION) => {}
                Some(_) => file.problem(&mut problems, "version", format!("must be {VERSION}")),
                None => file.problem(&mut problems, "version", format!("missing: write version: {VERSION}")),
            }
            match file.get("integrations") {
                Some(Value::Sequence(items)) => entries.extend(read_list(items, &mut problems)),
                Some(_) => file.problem(&mut problems, "integrations", "must be a list"),
                None => file.problem(&mut problems, "integrations", "missing: the list of integrations"),
            }
            file.finish(&mut problems);
        }
        Value::Sequence(items) => entries.extend(read_list(items, &mut problems)),
        Value::Null => problems.push(Problem::new("file", "empty")),
        _ => problems.push(Problem::new("file", "must be a mapping with version and integrations")),
    }
    check_names(&entries, &mut problems);
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

/// The entries that read, each with its place in the file. A list too
/// long is refused before its entries are read: each may add problems.
fn read_list(items: &[Value], problems: &mut Vec<Problem>) -> Vec<(String, Entry)> {
    if items.len() > MAX_ENTRIES {
        problems.push(Problem::new(
            "integrations",
            format!("{} entries: a file holds at most {MAX_ENTRIES}; split it", items.len()),
        ));
        return Vec::new();
    }
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Mapping(map) = item else {
            problems.push(Problem::new(format!("integrations[{i}]"), "must be a mapping"));
            continue;
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
        // The name is in the place of each of the entry's problems: a long one is cut.
        let name = match name.char_indices().nth(MAX_NAME_SHOWN) {
            Some((end, _)) => format!("{}…", &name[..end]),
            None => name.to_owned(),
        };
        let place = if name.is_empty() { format!("integrations[{i}]") } else { format!("integrations[{i}] ({name})") };
        let fields = Fields::new(&place, map);
        let entry = if map.contains_key("type") { cds_entry(fields, problems) } else { entry(fields, problems) };
        entries.extend(entry.map(|entry| (place, entry)));
    }
    entries
}

/// A name twice in one file is a problem (they are matched by name, and
/// names are unique without regard to case); so are two defaults of one provider.
fn check_names(entries: &[(String, Entry)], problems: &mut Vec<Problem>) {
    for (i, (place, entry)) in entries.iter().enumerate() {
        let earlier = || entries[..i].iter().map(|(_, e)| e);
        if earlier().any(|e| e.name.eq_ignore_ascii_case(&entry.name)) {
            problems.push(Problem::new(place.clone(), "this name is in the file twice"));
        }
        let is_default = |e: &Entry| e.scope == Scope::Default && e.provider == entry.provider;
        if is_default(entry) && earlier().any(is_default) {
            problems.push(Problem::new(
                place.clone(),
                format!("a second default {} integration: a provider has one default", entry.provider.label()),
            ));
        }
    }
}

/// The fields of one mapping, read one by one; what is left unread at
/// the end is an unknown field.
struct Fields<'a> {
    place: String,
    map: &'a Mapping,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(place: &str, map: &'a Mapping) -> Self {
        Self { place: place.to_owned(), map, read: Vec::new() }
    }

    fn path(&self, key: &str) -> String {
        if self.place == "file" {
            key.to_owned()
        } else {
            format!("{}.{key}", self.place)
        }
    }

    fn problem(&self, problems: &mut Vec<Problem>, key: &str, message: impl Into<String>) {
        problems.push(Problem::new(self.path(key), message));
    }

    /// The value of `key`; `None` when absent or null.
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.to_string()),
            // A number or a boolean where text is meant: YAML reads `name: 2024`
            // as a number; taking it as written is what the author meant.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.problem(problems, key, "must be text");
                None
            }
        }
    }

    fn required(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Option<String> {
        let before = problems.len();
        let found = self.string(key, problems).filter(|s| !s.trim().is_empty());
        // Unless it is there but not text (a problem already).
        if found.is_none() && problems.len() == before {
            self.problem(problems, key, "missing");
        }
        found
    }

    /// A secret: `None` when left out or still its placeholder.
    fn secret(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Option<Secret<String>> {
        self.string(key, problems)
            .filter(|s| !s.trim().is_empty() && !s.trim_start().starts_with(PLACEHOLDER))
            .map(Secret::new)
    }

    fn bool(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.problem(problems, key, "must be true or false");
                None
            }
        }
    }

    fn strings(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => {
                let mut found = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => found.push(s.to_string()),
                        _ => problems.push(Problem::new(format!("{}[{i}]", self.path(key)), "must be text")),
                    }
                }
                found
            }
            Some(_) => {
                self.problem(problems, key, "must be a list of text");
                Vec::new()
            }
        }
    }

    /// A field that is not this entry's to give (the other way to
    /// authenticate's): refused when given, rather than silently dropped.
    fn refuse(&mut self, key: &'static str, problems: &mut Vec<Problem>, message: &str) {
        if self.get(key).is_some() {
            problems.push(Problem::coded(self.path(key), "wrong_auth", message));
        }
    }

    fn nested(&mut self, key: &'static str, problems: &mut Vec<Problem>) -> Option<Fields<'a>> {
        match self.get(key)? {
            Value::Mapping(map) => Some(Fields::new(&self.path(key), map)),
            _ => {
                self.problem(problems, key, "must be a mapping");
                None
            }
        }
    }

    /// Names every field that was not read: a typo must not pass unseen.
    fn finish(self, problems: &mut Vec<Problem>) {
        for key in self.map.keys() {
            if !self.read.contains(&key) {
                self.problem(problems, key, "unknown field");
            }
        }
    }
}

/// Bitgate's own entry.
fn entry(mut fields: Fields<'_>, problems: &mut Vec<Problem>) -> Option<Entry> {
    let before = problems.len();
    let name = fields.required("name", problems);
    let provider = fields.required("provider", problems).and_then(|raw| match Provider::parse(&raw) {
        Ok(provider) => Some(provider),
        Err(_) => {
            fields.problem(problems, "provider", "must be bitbucket_datacenter or bitbucket_cloud");
            None
        }
    });
    let scope = fields.string("scope", problems);
    let space = fields.string("space", problems).filter(|s| !s.trim().is_empty());
    let scope = match (scope.as_deref(), space) {
        (Some("default"), None) => Scope::Default,
        (Some("default"), Some(_)) => {
            fields.problem(problems, "space", "a default integration has no space: remove it, or write scope: space");
            Scope::Default
        }
        (Some("space") | None, Some(space)) => Scope::Space(space),
        (Some("space"), None) => {
            fields.problem(problems, "space", "missing: the name of the space (or write scope: default)");
            Scope::Unstated
        }
        (None, None) => Scope::Unstated,
        (Some(_), _) => {
            fields.problem(problems, "scope", "must be default or space");
            Scope::Unstated
        }
    };
    let description = fields.string("description", problems).unwrap_or_default();
    let labels = fields.strings("labels", problems);
    let options = options(&mut fields, problems);
    let webhook_secret = fields.secret("webhook_secret", problems);
    let datacenter = fields.nested("datacenter", problems);
    let cloud = fields.nested("cloud", problems);
    let mut under_datacenter = WebhookFlags::default();
    let credentials = match (provider, datacenter, cloud) {
        (Some(Provider::DataCenter), Some(mut dc), cloud) => {
            if cloud.is_some() {
                fields.problem(problems, "cloud", "not a field of a Bitbucket Data Center integration");
            }
            let api_url = dc.required("api_url", problems);
            let user_facing_url = dc.string("user_facing_url", problems).filter(|s| !s.trim().is_empty());
            let login = datacenter_login(&mut dc, problems);
            let ca_certificate = dc.string("ca_certificate", problems).filter(|s| !s.trim().is_empty());
            // Files exported before these two were options of every integration
            // (Bitgate kept CDS's two for Data Center only) have them here: they
            // are still read, and `options` wins when it says otherwise.
            under_datacenter.disable_polling = dc.bool("disable_polling", problems);
            under_datacenter.disable_webhooks = dc.bool("disable_webhooks", problems);
            dc.finish(problems);
            let Login { auth, username, access_token, oauth2, oauth1 } = login?;
            Some(Credentials::DataCenter {
                api_url: api_url?,
                user_facing_url,
                auth,
                username,
                access_token,
                oauth2,
                oauth1,
                ca_certificate,
            })
        }
        (Some(Provider::Cloud), dc, Some(mut cloud)) => {
            if dc.is_some() {
                fields.problem(problems, "datacenter", "not a field of a Bitbucket Cloud integration");
            }
            let workspace = cloud.required("workspace", problems);
            let client_id = cloud.required("client_id", problems);
            let client_secret = cloud.secret("client_secret", problems);
            let mode = cloud.string("mode", problems).unwrap_or_else(|| "authorization_code".into());
            if !matches!(mode.as_str(), "authorization_code" | "client_credentials") {
                cloud.problem(problems, "mode", "must be authorization_code or client_credentials");
            }
            cloud.finish(problems);
            Some(Credentials::Cloud { workspace: workspace?, client_id: client_id?, client_secret, mode })
        }
        (Some(Provider::DataCenter), None, _) => {
            fields.problem(problems, "datacenter", "missing: the Data Center URL and credentials");
            None
        }
        (Some(Provider::Cloud), _, None) => {
            fields.problem(problems, "cloud", "missing: the workspace and the OAuth consumer");
            None
        }
        (None, _, _) => None,
    };
    let (options, given) = options;
    let options = with_webhook_flags(&fields, options, given.or(under_datacenter), problems);
    fields.finish(problems);
    if problems.len() > before {
        return None;
    }
    Some(Entry {
        name: name?,
        provider: provider?,
        scope,
        description,
        labels,
        options: options?,
        credentials: credentials?,
        webhook_secret,
    })
}

/// How a Data Center entry authenticates, as read.
struct Login {
    auth: DataCenterAuth,
    username: Option<String>,
    access_token: Option<Secret<String>>,
    oauth2: Option<OAuth2Link>,
    oauth1: Option<OAuth1Link>,
}

/// What the refusal of a key given in the file says: the key pair is not
/// configuration, whichever half is given.
const KEY_PAIR_NOT_READ: &str = "not read from a file: Bitgate makes an OAuth 1.0a link's key pair itself and never \
     exports its private key (the public key, to paste into Bitbucket, is on the integration's page): remove it";

/// Reads `auth` and the fields of the way it names; the other ways' are
/// refused, as the API refuses them ([`input::refuse_other_auth`]): a token
/// beside a link would otherwise be dropped without a word. `None` when
/// `auth` is not valid or a field it needs is missing.
fn datacenter_login(dc: &mut Fields<'_>, problems: &mut Vec<Problem>) -> Option<Login> {
    let before = problems.len();
    let auth = match dc.string("auth", problems) {
        // There, but not text: a problem already.
        None if problems.len() > before => None,
        None => Some(DataCenterAuth::AccessToken),
        Some(raw) => DataCenterAuth::parse(raw.trim()).or_else(|| {
            dc.problem(problems, "auth", "must be access_token, oauth2 or oauth1");
            None
        }),
    };
    // Under `datacenter` too, a key is refused for what it is, not as an unknown field.
    if auth == Some(DataCenterAuth::OAuth1) {
        for key in ["private_key", "public_key"] {
            if dc.get(key).is_some() {
                dc.problem(problems, key, KEY_PAIR_NOT_READ);
            }
        }
    }
    let no_oauth1 = "not a field of this integration: oauth1 is an OAuth 1.0a application link's, \
                     write auth: oauth1 to use one";
    match auth {
        Some(DataCenterAuth::AccessToken) => {
            let username = dc.required("username", problems);
            let access_token = dc.secret("access_token", problems);
            dc.refuse(
                "oauth2",
                problems,
                "not a field of an integration that authenticates with an access token: remove it, \
                 or write auth: oauth2 to use an application link",
            );
            dc.refuse("oauth1", problems, no_oauth1);
            let token = Login {
                auth: DataCenterAuth::AccessToken,
                username: Some(username?),
                access_token,
                oauth2: None,
                oauth1: None,
            };
            Some(token)
        }
        Some(DataCenterAuth::OAuth2) => {
            dc.refuse(
                "username",
                problems,
                "not a field of an OAuth 2.0 integration, which acts as whoever approves it in Bitbucket: remove it",
            );
            dc.refuse(
                "access_token",
                problems,
                "not a field of an OAuth 2.0 integration: remove it, or write auth: access_token to use a token",
            );
            dc.refuse("oauth1", problems, no_oauth1);
            let before = problems.len();
            let Some(mut link) = dc.nested("oauth2", problems) else {
                // Unless it is there but not a mapping (a problem already).
                if problems.len() == before {
                    dc.problem(problems, "oauth2", "missing: the application link's client_id and client_secret");
                }
                return None;
            };
            let client_id = link.required("client_id", problems);
            let client_secret = link.secret("client_secret", problems);
            link.finish(problems);
            let oauth2 = OAuth2Link { client_id: client_id?, client_secret };
            let link = Login {
                auth: DataCenterAuth::OAuth2,
                username: None,
                access_token: None,
                oauth2: Some(oauth2),
                oauth1: None,
            };
            Some(link)
        }
        Some(DataCenterAuth::OAuth1) => {
            dc.refuse(
                "username",
                problems,
                "not a field of an OAuth 1.0a integration, which acts as whoever approves it in Bitbucket: remove it",
            );
            dc.refuse(
                "access_token",
                problems,
                "not a field of an OAuth 1.0a integration (its access token comes with Connect): remove it, \
                 or write auth: access_token to use a token",
            );
            dc.refuse(
                "oauth2",
                problems,
                "not a field of an OAuth 1.0a integration: remove it, or write auth: oauth2 to use an OAuth 2.0 link",
            );
            // The mapping is optional: the consumer key is Bitgate's own when left out.
            let consumer_key = match dc.nested("oauth1", problems) {
                Some(mut link) => {
                    let consumer_key = link.string("consumer_key", problems).filter(|k| !k.trim().is_empty());
                    for key in ["private_key", "public_key"] {
                        if link.get(key).is_some() {
                            link.problem(problems, key, KEY_PAIR_NOT_READ);
                        }
                    }
                    link.finish(problems);
                    consumer_key
                }
                None => None,
            };
            let link = Login {
                auth: DataCenterAuth::OAuth1,
                username: None,
                access_token: None,
                oauth2: None,
                oauth1: Some(OAuth1Link { consumer_key }),
            };
            Some(link)
        }
        None => {
            // Which of these belong is not known: read, so as not to be
            // called unknown besides; the problem with `auth` says what to fix.
            for key in ["username", "access_token", "oauth2", "oauth1"] {
                dc.get(key);
            }
            None
        }
    }
}

/// The webhook options as a file gives them, `None` where it does not.
#[derive(Debug, Clone, Copy, Default)]
struct WebhookFlags {
    manage_webhooks: Option<bool>,
    disable_polling: Option<bool>,
    disable_webhooks: Option<bool>,
}

impl WebhookFlags {
    /// These, and `other`'s where these say nothing.
    fn or(self, other: WebhookFlags) -> WebhookFlags {
        WebhookFlags {
            manage_webhooks: self.manage_webhooks.or(other.manage_webhooks),
            disable_polling: self.disable_polling.or(other.disable_polling),
            disable_webhooks: self.disable_webhooks.or(other.disable_webhooks),
        }
    }
}

/// The options of Bitgate's own entry (`None` when one is wrong); the
/// webhook ones as given, to be set by [`with_webhook_flags`] once every
/// place that may give them is read.
fn options(fields: &mut Fields<'_>, problems: &mut Vec<Problem>) -> (Option<Options>, WebhookFlags) {
    let defaults = Options::default();
    let Some(mut options) = fields.nested("options", problems) else {
        return (Some(defaults), WebhookFlags::default());
    };
    let before = problems.len();
    let use_git_checkout = options.bool("use_git_checkout", problems).unwrap_or(defaults.use_git_checkout);
    let commit_status = options.bool("commit_status", problems).unwrap_or(defaults.commit_status);
    let status_details = options.bool("status_details", problems).unwrap_or(defaults.status_details);
    let vcs_checks = match options.string("vcs_checks", problems) {
        None => Some(defaults.vcs_checks),
        Some(raw) => VcsChecks::parse(&raw).or_else(|| {
            options.problem(problems, "vcs_checks", "must be individual, aggregated or all");
            None
        }),
    };
    let pr_comments = match options.string("pr_comments", problems) {
        None => Some(defaults.pr_comments),
        Some(raw) => PrComments::parse(&raw).or_else(|| {
            options.problem(problems, "pr_comments", "must be off, failures or always");
            None
        }),
    };
    let webhooks = WebhookFlags {
        manage_webhooks: options.bool("manage_webhooks", problems),
        disable_polling: options.bool("disable_polling", problems),
        disable_webhooks: options.bool("disable_webhooks", problems),
    };
    options.finish(problems);
    let read = match (vcs_checks, pr_comments) {
        (Some(vcs_checks), Some(pr_comments)) if problems.len() == before => {
            Some(Options { use_git_checkout, commit_status, status_details, vcs_checks, pr_comments, ..defaults })
        }
        _ => None,
    };
    (read, webhooks)
}

/// `options` with the webhook options given (the defaults where none is),
/// held to the rule the API and the pages are held to: webhooks disabled
/// keep their management off ([`input::webhook_options`]). The rule is
/// judged even when another option is wrong, so that both are reported.
fn with_webhook_flags(
    fields: &Fields<'_>,
    options: Option<Options>,
    given: WebhookFlags,
    problems: &mut Vec<Problem>,
) -> Option<Options> {
    let defaults = Options::default();
    let mut found = Problems::default();
    let webhooks = input::webhook_options(&mut found, &defaults, given.manage_webhooks, given.disable_webhooks);
    problems
        .extend(found.0.into_iter().map(|error| Problem::coded(fields.path(&error.field), &error.code, error.message)));
    let (manage_webhooks, disable_webhooks) = webhooks?;
    Some(Options {
        manage_webhooks,
        disable_polling: given.disable_polling.unwrap_or(defaults.disable_polling),
        disable_webhooks,
        ..options?
    })
}

/// An entry in the shape of CDS's files (`type: bitbucketserver`): a Data
/// Center integration in the space the import is given.
fn cds_entry(mut fields: Fields<'_>, problems: &mut Vec<Problem>) -> Option<Entry> {
    let before = problems.len();
    fields.string("version", problems);
    let name = fields.required("name", problems);
    match fields.string("type", problems).as_deref() {
        Some("bitbucketserver") => {}
        _ => fields.problem(problems, "type", "must be bitbucketserver: the only CDS type Bitgate reads"),
    }
    let description = fields.string("description", problems).unwrap_or_default();
    let url = fields.required("url", problems);
    let before_auth = problems.len();
    let mut auth = fields.nested("auth", problems);
    if auth.is_none() && problems.len() == before_auth {
        fields.problem(problems, "auth", "missing: user and token");
    }
    let (user, token) = match auth.as_mut() {
        Some(auth) => {
            // CDS's Bitbucket example says `user`; its others say `username`.
            let user = auth.string("user", problems).or_else(|| auth.string("username", problems));
            if user.is_none() {
                auth.problem(problems, "user", "missing");
            }
            (user, auth.secret("token", problems))
        }
        None => (None, None),
    };
    if let Some(auth) = auth {
        auth.finish(problems);
    }
    // CDS has no option for pull-request comments (its VCS options are the
    // five read here): its entries get Bitgate's default.
    let mut options = Options::default();
    if let Some(mut cds) = fields.nested("options", problems) {
        options.commit_status = !cds.bool("disableStatus", problems).unwrap_or(false);
        options.status_details = !cds.bool("disableStatusDetails", problems).unwrap_or(false);
        options.disable_polling = cds.bool("disablePolling", problems).unwrap_or(false);
        options.disable_webhooks = cds.bool("disableWebHooks", problems).unwrap_or(false);
        let creation_disabled = cds.bool("disableWebHooksCreation", problems).unwrap_or(false);
        // In CDS, webhooks disabled are not created whatever
        // disableWebHooksCreation says: never a conflict to refuse.
        options.manage_webhooks = !creation_disabled && !options.disable_webhooks;
        cds.finish(problems);
    }
    fields.finish(problems);
    if problems.len() > before {
        return None;
    }
    Some(Entry {
        name: name?,
        provider: Provider::DataCenter,
        scope: Scope::Unstated,
        description,
        labels: Vec::new(),
        options,
        credentials: Credentials::DataCenter {
            api_url: url?,
            user_facing_url: None,
            auth: DataCenterAuth::AccessToken,
            username: Some(user?),
            access_token: token,
            oauth2: None,
            oauth1: None,
            ca_certificate: None,
        },
        webhook_secret: None,
    })
}

/// Writes entries as a file (export): every secret a placeholder, except a
/// webhook secret given on purpose. Fields come in the order of [`Entry`],
/// lists unindented under their key.
pub fn render(entries: &[Entry]) -> String {
    let mut out = format!(
        "# Bitgate integrations (bitgate integrations schema prints this file's JSON Schema).\n\
         # Secrets are not exported: replace each \"{PLACEHOLDER}: …>\" before importing into\n\
         # another Bitgate; left as it is, an integration that exists keeps its stored secret.\n\
         version: {VERSION}\n"
    );
    if entries.is_empty() {
        out.push_str("integrations: []\n");
        return out;
    }
    out.push_str("integrations:\n");
    for entry in entries {
        write_entry(&mut out, entry);
    }
    out
}

/// `key: value` at `indent`.
fn field(out: &mut String, indent: usize, key: &str, value: &str) {
    let _ = writeln!(out, "{:indent$}{key}: {}", "", yaml::scalar(value, indent));
}

fn flag(out: &mut String, indent: usize, key: &str, value: bool) {
    let _ = writeln!(out, "{:indent$}{key}: {value}", "");
}

/// The key of a mapping or a list written under it.
fn key(out: &mut String, indent: usize, key: &str) {
    let _ = writeln!(out, "{:indent$}{key}:", "");
}

fn write_entry(out: &mut String, entry: &Entry) {
    let _ = writeln!(out, "- name: {}", yaml::scalar(&entry.name, 2));
    field(out, 2, "provider", entry.provider.as_str());
    match &entry.scope {
        Scope::Default => field(out, 2, "scope", "default"),
        Scope::Space(name) => {
            field(out, 2, "scope", "space");
            field(out, 2, "space", name);
        }
        Scope::Unstated => field(out, 2, "scope", "space"),
    }
    if !entry.description.is_empty() {
        field(out, 2, "description", &entry.description);
    }
    if !entry.labels.is_empty() {
        key(out, 2, "labels");
        for label in &entry.labels {
            let _ = writeln!(out, "  - {}", yaml::scalar(label, 4));
        }
    }
    key(out, 2, "options");
    let options = &entry.options;
    flag(out, 4, "use_git_checkout", options.use_git_checkout);
    flag(out, 4, "commit_status", options.commit_status);
    flag(out, 4, "status_details", options.status_details);
    field(out, 4, "vcs_checks", options.vcs_checks.as_str());
    field(out, 4, "pr_comments", options.pr_comments.as_str());
    flag(out, 4, "manage_webhooks", options.manage_webhooks);
    flag(out, 4, "disable_polling", options.disable_polling);
    flag(out, 4, "disable_webhooks", options.disable_webhooks);
    match &entry.credentials {
        Credentials::DataCenter {
            api_url,
            user_facing_url,
            auth,
            username,
            access_token,
            oauth2,
            oauth1,
            ca_certificate,
        } => {
            key(out, 2, "datacenter");
            field(out, 4, "api_url", api_url);
            if let Some(url) = user_facing_url.as_deref().filter(|u| u != api_url) {
                field(out, 4, "user_facing_url", url);
            }
            match auth {
                // The default is not written: the files exported before there
                // was a choice stay as they were.
                DataCenterAuth::AccessToken => {
                    let username = username.as_deref().unwrap_or_default();
                    field(out, 4, "username", username);
                    let token = or_placeholder(access_token.as_ref(), &format!("the HTTP access token of {username}"));
                    field(out, 4, "access_token", &token);
                }
                // No username: whoever approves the link is not configuration
                // (and the file would refuse it back).
                DataCenterAuth::OAuth2 => {
                    field(out, 4, "auth", auth.as_str());
                    key(out, 4, "oauth2");
                    let (client_id, client_secret) = oauth2
                        .as_ref()
                        .map_or(("", None), |link| (link.client_id.as_str(), link.client_secret.as_ref()));
                    field(out, 6, "client_id", client_id);
                    let what = format!("the client secret of application link {client_id}");
                    field(out, 6, "client_secret", &or_placeholder(client_secret, &what));
                }
                // The consumer key alone: the key pair stays in this Bitgate.
                // The public key is not configuration either (the file would
                // refuse it back): the integration's page shows it.
                DataCenterAuth::OAuth1 => {
                    field(out, 4, "auth", auth.as_str());
                    let _ = writeln!(
                        out,
                        "    # The key pair is not exported: this Bitgate keeps it; another makes a new one on\n    \
                         # import, whose public key its page shows to paste into Bitbucket's application link."
                    );
                    if let Some(consumer_key) = oauth1.as_ref().and_then(|link| link.consumer_key.as_deref()) {
                        key(out, 4, "oauth1");
                        field(out, 6, "consumer_key", consumer_key);
                    }
                }
            }
            if let Some(pem) = ca_certificate {
                field(out, 4, "ca_certificate", pem);
            }
        }
        Credentials::Cloud { workspace, client_id, client_secret, mode } => {
            key(out, 2, "cloud");
            field(out, 4, "workspace", workspace);
            field(out, 4, "client_id", client_id);
            let secret = or_placeholder(client_secret.as_ref(), &format!("the secret of OAuth consumer {client_id}"));
            field(out, 4, "client_secret", &secret);
            field(out, 4, "mode", mode);
        }
    }
    let webhook_secret = or_placeholder(
        entry.webhook_secret.as_ref(),
        "optional: the secret Bitbucket's webhook has, to keep it working",
    );
    field(out, 2, "webhook_secret", &webhook_secret);
}

/// A secret given on purpose is written as it is; else the placeholder
/// naming what to fill in.
fn or_placeholder(secret: Option<&Secret<String>>, what: &str) -> String {
    secret.map_or_else(|| format!("{PLACEHOLDER}: {what}>"), |secret| secret.expose().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::{PrComments, VcsChecks};

    fn datacenter(name: &str, scope: Scope) -> Entry {
        Entry {
            name: name.into(),
            provider: Provider::DataCenter,
            scope,
            description: "Our **main** Bitbucket".into(),
            labels: vec!["prod".into()],
            // Not the defaults, so that a round trip that dropped one would show.
            options: Options {
                commit_status: false,
                pr_comments: PrComments::Always,
                manage_webhooks: false,
                disable_polling: true,
                disable_webhooks: true,
                ..Options::default()
            },
            credentials: Credentials::DataCenter {
                api_url: "https://bitbucket.example.com".into(),
                user_facing_url: Some("https://git.example.com".into()),
                auth: DataCenterAuth::AccessToken,
                username: Some("bot".into()),
                access_token: None,
                oauth2: None,
                oauth1: None,
                ca_certificate: None,
            },
            webhook_secret: None,
        }
    }

    /// A Data Center entry with an OAuth 2.0 application link.
    fn linked(name: &str) -> Entry {
        Entry {
            credentials: Credentials::DataCenter {
                api_url: "https://bitbucket.example.com".into(),
                user_facing_url: None,
                auth: DataCenterAuth::OAuth2,
                username: None,
                access_token: None,
                oauth2: Some(OAuth2Link { client_id: "7c1e0b5f".into(), client_secret: None }),
                oauth1: None,
                ca_certificate: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            },
            ..datacenter(name, Scope::Default)
        }
    }

    /// A Data Center entry with an OAuth 1.0a application link.
    fn legacy(name: &str, consumer_key: Option<&str>) -> Entry {
        Entry {
            credentials: Credentials::DataCenter {
                api_url: "https://bitbucket.example.com".into(),
                user_facing_url: None,
                auth: DataCenterAuth::OAuth1,
                username: None,
                access_token: None,
                oauth2: None,
                oauth1: Some(OAuth1Link { consumer_key: consumer_key.map(Into::into) }),
                ca_certificate: None,
            },
            ..datacenter(name, Scope::Space("platform".into()))
        }
    }

    fn cloud(name: &str) -> Entry {
        Entry {
            name: name.into(),
            provider: Provider::Cloud,
            scope: Scope::Default,
            description: String::new(),
            labels: Vec::new(),
            options: Options::default(),
            credentials: Credentials::Cloud {
                workspace: "acme".into(),
                client_id: "key".into(),
                client_secret: None,
                mode: "client_credentials".into(),
            },
            webhook_secret: Some("kept-webhook-secret".into()),
        }
    }

    fn places(text: &str) -> Vec<String> {
        parse(text).unwrap_err().into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn an_exported_file_reads_back_the_same_with_every_secret_a_placeholder() {
        let entries = vec![datacenter("dc-main", Scope::Space("platform".into())), cloud("cloud")];
        let text = render(&entries);
        assert!(text.contains("access_token: '<fill in: the HTTP access token of bot>'"), "{text}");
        assert!(text.contains("client_secret: '<fill in: the secret of OAuth consumer key>'"), "{text}");
        assert!(text.contains("webhook_secret: kept-webhook-secret"), "a webhook secret given on purpose");
        // Exported even when it is the default.
        assert!(text.contains("    pr_comments: always\n"), "{text}");
        assert!(text.contains("    pr_comments: failures\n"), "{text}");
        // The webhook options are every provider's: under options, for both.
        for (option, values) in [
            ("manage_webhooks", [false, true]),
            ("disable_polling", [true, false]),
            ("disable_webhooks", [true, false]),
        ] {
            for value in values {
                assert_eq!(text.matches(&format!("\n    {option}: {value}\n")).count(), 1, "{option}: {text}");
            }
        }
        assert_eq!(parse(&text).unwrap(), entries);
        // Filled in, the secrets are read.
        let filled = text.replace("'<fill in: the HTTP access token of bot>'", "BBDC-secret");
        let Credentials::DataCenter { access_token, .. } = &parse(&filled).unwrap()[0].credentials else { panic!() };
        assert_eq!(access_token.as_ref().map(|t| t.expose().as_str()), Some("BBDC-secret"));
    }

    #[test]
    fn an_oauth2_entry_is_exported_with_its_client_id_alone_and_reads_back_the_same() {
        let entries = vec![linked("dc-linked"), datacenter("dc-token", Scope::Space("platform".into()))];
        let text = render(&entries);
        let linked_text = &text[..text.find("- name: dc-token").unwrap()];
        assert!(linked_text.contains("\n    auth: oauth2\n    oauth2:\n      client_id: 7c1e0b5f\n"), "{text}");
        assert!(
            linked_text.contains("      client_secret: '<fill in: the client secret of application link 7c1e0b5f>'\n"),
            "{text}"
        );
        // Neither the approving account nor a token: not this way's fields.
        assert!(!linked_text.contains("username") && !linked_text.contains("access_token"), "{text}");
        // An access token's entry is written as before there was a choice.
        assert!(!text[linked_text.len()..].contains("auth:"), "{text}");
        assert_eq!(parse(&text).unwrap(), entries);
        // Filled in, the secret is read.
        let filled = text.replace("'<fill in: the client secret of application link 7c1e0b5f>'", "s3cret");
        let Credentials::DataCenter { oauth2: Some(link), .. } = &parse(&filled).unwrap()[0].credentials else {
            panic!("{filled}")
        };
        assert_eq!(link.client_secret.as_ref().map(|s| s.expose().as_str()), Some("s3cret"));
        // A secret given on purpose is written as it is.
        let mut given = linked("dc-linked");
        let Credentials::DataCenter { oauth2: Some(link), .. } = &mut given.credentials else { panic!() };
        link.client_secret = Some("on-purpose".into());
        assert!(render(&[given]).contains("      client_secret: on-purpose\n"));
    }

    /// The problems of a Data Center entry with these `datacenter` fields.
    fn datacenter_problems(fields: &str) -> Vec<Problem> {
        let text = format!(
            "version: 1\nintegrations:\n  - name: n\n    provider: bitbucket_datacenter\n    scope: default\n    \
             datacenter: {{api_url: https://b.example.com, {fields}}}\n"
        );
        parse(&text).unwrap_err()
    }

    #[test]
    fn a_datacenter_entry_gives_the_fields_of_its_way_to_authenticate_and_no_others() {
        let read = |fields: &str| {
            let text = format!(
                "version: 1\nintegrations:\n  - {{name: n, provider: bitbucket_datacenter, scope: default, \
                 datacenter: {{api_url: https://b.example.com, {fields}}}}}\n"
            );
            parse(&text).map(|mut entries| entries.remove(0).credentials)
        };
        let Ok(Credentials::DataCenter { auth, username, oauth2, .. }) =
            read("auth: oauth2, oauth2: {client_id: ' abc ', client_secret: s}")
        else {
            panic!()
        };
        assert_eq!((auth, username), (DataCenterAuth::OAuth2, None));
        let link = oauth2.unwrap();
        assert_eq!(
            (link.client_id.as_str(), link.client_secret.map(|s| s.expose().clone())),
            (" abc ", Some("s".into())),
            "as written: the import trims it, as the API does"
        );
        // Left out, it is an access token, as before there was a choice; and it may be said.
        for fields in ["username: u, access_token: t", "auth: access_token, username: u, access_token: t"] {
            let Ok(Credentials::DataCenter { auth, username, oauth2, .. }) = read(fields) else { panic!("{fields}") };
            assert_eq!((auth, username.as_deref(), oauth2), (DataCenterAuth::AccessToken, Some("u"), None));
        }

        // The other way's fields: refused where they are, not dropped.
        let problems = datacenter_problems("auth: oauth2, username: u, access_token: t, oauth2: {client_id: c}");
        let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.place.as_str(), p.code.as_str())).collect();
        assert_eq!(
            found,
            [
                ("integrations[0] (n).datacenter.username", "wrong_auth"),
                ("integrations[0] (n).datacenter.access_token", "wrong_auth")
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("acts as whoever approves it"), "{problems:?}");
        assert!(problems[1].message.contains("write auth: access_token"), "{problems:?}");
        // Even as the placeholder an export of a token's entry has.
        let placeholder = datacenter_problems("auth: oauth2, access_token: '<fill in: x>', oauth2: {client_id: c}");
        assert_eq!(placeholder.len(), 1, "{placeholder:?}");
        assert_eq!(placeholder[0].place, "integrations[0] (n).datacenter.access_token");
        let problems = datacenter_problems("username: u, oauth2: {client_id: c, client_secret: s}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].place.as_str(), problems[0].code.as_str()),
            ("integrations[0] (n).datacenter.oauth2", "wrong_auth")
        );
        assert!(problems[0].message.contains("write auth: oauth2"), "{problems:?}");

        // What each way needs, and what is not a way.
        let strings = |problems: Vec<Problem>| problems.into_iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(
            strings(datacenter_problems("auth: oauth2")),
            ["integrations[0] (n).datacenter.oauth2: missing: the application link's client_id and client_secret"]
        );
        assert_eq!(
            strings(datacenter_problems("auth: oauth2, oauth2: {client_secret: s, scope: x}")),
            [
                "integrations[0] (n).datacenter.oauth2.client_id: missing",
                "integrations[0] (n).datacenter.oauth2.scope: unknown field"
            ]
        );
        assert_eq!(
            strings(datacenter_problems("auth: oauth2, oauth2: c")),
            ["integrations[0] (n).datacenter.oauth2: must be a mapping"]
        );
        assert_eq!(
            strings(datacenter_problems("access_token: t")),
            ["integrations[0] (n).datacenter.username: missing"]
        );
        // An unknown way: said once, its fields not called unknown besides.
        assert_eq!(
            strings(datacenter_problems("auth: basic, username: u, oauth2: {client_id: c}, oauth1: {consumer_key: k}")),
            ["integrations[0] (n).datacenter.auth: must be access_token, oauth2 or oauth1"]
        );
        assert_eq!(
            strings(datacenter_problems("auth: [oauth2]")),
            ["integrations[0] (n).datacenter.auth: must be text"]
        );
    }

    #[test]
    fn an_oauth1_entry_is_exported_with_its_consumer_key_alone_and_reads_back_the_same() {
        let entries = vec![
            legacy("dc-legacy", Some("bitgate-dc-legacy")),
            legacy("dc-unsaid", None),
            datacenter("dc-token", Scope::Space("platform".into())),
        ];
        let text = render(&entries);
        let legacy_text = &text[..text.find("- name: dc-token").unwrap()];
        assert!(
            legacy_text.contains(
                "\n    auth: oauth1\n    # The key pair is not exported: this Bitgate keeps it; another makes a new one on\n    \
                 # import, whose public key its page shows to paste into Bitbucket's application link.\n    \
                 oauth1:\n      consumer_key: bitgate-dc-legacy\n"
            ),
            "{text}"
        );
        // Without a consumer key (never stored so), the way alone.
        let unsaid = &legacy_text[legacy_text.find("- name: dc-unsaid").unwrap()..];
        assert!(!unsaid.contains("oauth1:"), "{text}");
        // Neither half of the key pair, nor another way's fields.
        for absent in ["PRIVATE KEY", "PUBLIC KEY", "private_key", "public_key", "username", "access_token", "oauth2"] {
            assert!(!legacy_text.contains(absent), "{absent}: {text}");
        }
        assert_eq!(parse(&text).unwrap(), entries);
    }

    #[test]
    fn an_oauth1_entry_gives_its_consumer_key_and_never_a_key() {
        let read = |fields: &str| {
            let text = format!(
                "version: 1\nintegrations:\n  - {{name: n, provider: bitbucket_datacenter, scope: default, \
                 datacenter: {{api_url: https://b.example.com, {fields}}}}}\n"
            );
            parse(&text).map(|mut entries| entries.remove(0).credentials)
        };
        let link_of = |fields: &str| {
            let Ok(Credentials::DataCenter { auth, username, access_token, oauth2, oauth1, .. }) = read(fields) else {
                panic!("{fields}")
            };
            assert_eq!((auth, username, access_token, oauth2), (DataCenterAuth::OAuth1, None, None, None), "{fields}");
            oauth1.expect("always there with auth: oauth1").consumer_key
        };
        assert_eq!(link_of("auth: oauth1, oauth1: {consumer_key: ' k '}"), Some(" k ".into()), "as written");
        for unsaid in ["auth: oauth1", "auth: oauth1, oauth1: {}", "auth: oauth1, oauth1: {consumer_key: ''}"] {
            assert_eq!(link_of(unsaid), None, "Bitgate's own: {unsaid}");
        }

        // The other ways' fields: refused where they are.
        let problems = datacenter_problems("auth: oauth1, username: u, access_token: t, oauth2: {client_id: c}");
        let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.place.as_str(), p.code.as_str())).collect();
        assert_eq!(
            found,
            [
                ("integrations[0] (n).datacenter.username", "wrong_auth"),
                ("integrations[0] (n).datacenter.access_token", "wrong_auth"),
                ("integrations[0] (n).datacenter.oauth2", "wrong_auth"),
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("acts as whoever approves it"), "{problems:?}");
        assert!(problems[1].message.contains("write auth: access_token"), "{problems:?}");
        assert!(problems[2].message.contains("write auth: oauth2"), "{problems:?}");
        // And its own, beside another way.
        for fields in [
            "username: u, access_token: t, oauth1: {consumer_key: k}",
            "auth: oauth2, oauth2: {client_id: c}, oauth1: {}",
        ] {
            let problems = datacenter_problems(fields);
            assert_eq!(problems.len(), 1, "{fields}: {problems:?}");
            assert_eq!(
                (problems[0].place.as_str(), problems[0].code.as_str()),
                ("integrations[0] (n).datacenter.oauth1", "wrong_auth")
            );
            assert!(problems[0].message.contains("write auth: oauth1"), "{problems:?}");
        }

        // A key, either half, wherever given: Bitgate makes the pair; its value is not repeated.
        let pem = "'-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----'";
        let problems = datacenter_problems(&format!(
            "auth: oauth1, private_key: {pem}, oauth1: {{consumer_key: k, private_key: {pem}, public_key: p}}"
        ));
        let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.place.as_str(), p.code.as_str())).collect();
        assert_eq!(
            found,
            [
                ("integrations[0] (n).datacenter.private_key", "invalid"),
                ("integrations[0] (n).datacenter.oauth1.private_key", "invalid"),
                ("integrations[0] (n).datacenter.oauth1.public_key", "invalid"),
            ],
            "{problems:?}"
        );
        for problem in &problems {
            assert!(problem.message.contains("Bitgate makes an OAuth 1.0a link's key pair itself"), "{problem}");
            assert!(problem.message.contains("never exports its private key"), "{problem}");
            assert!(!problem.message.contains("BEGIN"), "{problem}");
        }

        let strings = |problems: Vec<Problem>| problems.into_iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(
            strings(datacenter_problems("auth: oauth1, oauth1: {consumer_key: k, secret: s}")),
            ["integrations[0] (n).datacenter.oauth1.secret: unknown field"]
        );
        assert_eq!(
            strings(datacenter_problems("auth: oauth1, oauth1: k")),
            ["integrations[0] (n).datacenter.oauth1: must be a mapping"]
        );
        assert_eq!(
            strings(datacenter_problems("auth: oauth1, oauth1: {consumer_key: [k]}")),
            ["integrations[0] (n).datacenter.oauth1.consumer_key: must be text"]
        );
    }

    #[test]
    fn a_cds_entry_is_read_alone_or_in_the_list() {
        let cds = "version: v1.0\nname: my-bitbucket\ntype: bitbucketserver\ndescription: \"it's the test vcs server\"\n\
                   url: \"http://my-bitbucket.localhost\"\nauth:\n    user: the-username\n    token: the-token\n\
                   options:\n    disableStatus: true\n    disableStatusDetails: false\n    disablePolling: true\n    disableWebHooks: true\n";
        let entries = parse(cds).unwrap();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(
            (entry.name.as_str(), entry.provider, &entry.scope),
            ("my-bitbucket", Provider::DataCenter, &Scope::Unstated)
        );
        assert_eq!((entry.options.commit_status, entry.options.status_details), (false, true));
        assert_eq!(entry.options.pr_comments, PrComments::Failures, "CDS has no such option: the default");
        assert_eq!(
            (entry.options.manage_webhooks, entry.options.disable_polling, entry.options.disable_webhooks),
            (false, true, true),
            "disableWebHooks keeps management off"
        );
        assert_eq!(
            entry.credentials,
            Credentials::DataCenter {
                api_url: "http://my-bitbucket.localhost".into(),
                user_facing_url: None,
                auth: DataCenterAuth::AccessToken,
                username: Some("the-username".into()),
                access_token: Some("the-token".into()),
                oauth2: None,
                oauth1: None,
                ca_certificate: None,
            }
        );
        let indented: String = cds.lines().map(|l| format!("    {l}\n")).collect();
        let listed = format!("version: 1\nintegrations:\n  - {}", indented.trim_start());
        assert_eq!(parse(&listed).unwrap(), entries);
        assert_eq!(
            places("name: x\ntype: gitlab\nurl: u\nauth: {user: a, token: b}\n"),
            ["type: must be bitbucketserver: the only CDS type Bitgate reads"]
        );
    }

    #[test]
    fn cds_webhook_options_become_bitgates() {
        let options_of = |cds_options: &str| {
            let text = format!(
                "name: n\ntype: bitbucketserver\nurl: u\nauth: {{user: a, token: b}}\noptions: {cds_options}\n"
            );
            let options = parse(&text).unwrap().remove(0).options;
            (options.manage_webhooks, options.disable_polling, options.disable_webhooks)
        };
        assert_eq!(options_of("{}"), (true, false, false), "Bitgate's defaults");
        assert_eq!(options_of("{disablePolling: true}"), (true, true, false));
        assert_eq!(options_of("{disableWebHooksCreation: true}"), (false, false, false));
        assert_eq!(options_of("{disableWebHooksCreation: false}"), (true, false, false));
        assert_eq!(options_of("{disableWebHooks: true}"), (false, false, true));
        // CDS creates no webhook it disabled, whatever the creation option says.
        assert_eq!(options_of("{disableWebHooks: true, disableWebHooksCreation: false}"), (false, false, true));
        assert_eq!(
            places("name: n\ntype: bitbucketserver\nurl: u\nauth: {user: a, token: b}\noptions: {disableWebHooksCreation: 1}\n"),
            ["options.disableWebHooksCreation: must be true or false"]
        );
    }

    /// The webhook options of Bitgate's own Data Center entry, with
    /// `options` and `datacenter` fields added.
    fn webhook_options_of(options: &str, datacenter: &str) -> Result<(bool, bool, bool), Vec<String>> {
        let text = format!(
            "version: 1\nintegrations:\n  - name: n\n    provider: bitbucket_datacenter\n    scope: default\n    \
             options: {{{options}}}\n    datacenter: {{api_url: https://b.example.com, username: u{datacenter}}}\n"
        );
        match parse(&text) {
            Ok(mut entries) => {
                let options = entries.remove(0).options;
                Ok((options.manage_webhooks, options.disable_polling, options.disable_webhooks))
            }
            Err(problems) => Err(problems.into_iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn disabled_webhooks_keep_their_management_off_in_a_file_too() {
        assert_eq!(webhook_options_of("", ""), Ok((true, false, false)), "the defaults");
        assert_eq!(webhook_options_of("disable_webhooks: true", ""), Ok((false, false, true)), "management follows");
        assert_eq!(webhook_options_of("manage_webhooks: false, disable_polling: true", ""), Ok((false, true, false)));
        let refused = webhook_options_of("manage_webhooks: true, disable_webhooks: true", "").unwrap_err();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with(
                "integrations[0] (n).options.manage_webhooks: Bitgate cannot manage webhooks that are disabled"
            ),
            "{refused:?}"
        );
        assert_eq!(
            webhook_options_of("manage_webhooks: maybe", "").unwrap_err(),
            ["integrations[0] (n).options.manage_webhooks: must be true or false"]
        );
        // Reported with the other options' problems, not instead of them.
        let both = webhook_options_of("vcs_checks: some, manage_webhooks: true, disable_webhooks: true", "");
        let both = both.unwrap_err();
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(both[0].ends_with("options.vcs_checks: must be individual, aggregated or all"), "{both:?}");
        assert!(both[1].contains("options.manage_webhooks: Bitgate cannot manage"), "{both:?}");
    }

    #[test]
    fn older_files_webhook_options_under_datacenter_are_still_read() {
        // As Bitgate wrote them before they were every integration's options.
        assert_eq!(webhook_options_of("", ", disable_polling: true"), Ok((true, true, false)));
        assert_eq!(webhook_options_of("", ", disable_webhooks: true"), Ok((false, false, true)));
        // Where both say, options wins.
        assert_eq!(
            webhook_options_of(
                "disable_polling: false, disable_webhooks: false",
                ", disable_polling: true, disable_webhooks: true"
            ),
            Ok((true, false, false))
        );
        // And the rule holds across the two places.
        let refused = webhook_options_of("manage_webhooks: true", ", disable_webhooks: true").unwrap_err();
        assert!(refused[0].contains("options.manage_webhooks: Bitgate cannot manage webhooks"), "{refused:?}");
    }

    #[test]
    fn a_file_holds_at_most_500_entries() {
        let file = |count: usize| {
            let entries: String = (0..count)
                .map(|n| format!("- {{name: i{n}, type: bitbucketserver, url: u, auth: {{user: a, token: b}}}}\n"))
                .collect();
            format!("version: 1\nintegrations:\n{entries}")
        };
        assert_eq!(parse(&file(MAX_ENTRIES)).unwrap().len(), MAX_ENTRIES);
        assert_eq!(places(&file(MAX_ENTRIES + 1)), ["integrations: 501 entries: a file holds at most 500; split it"]);
    }

    #[test]
    fn reading_a_large_file_stays_quick_and_its_problems_short() {
        // Entries past the limit are not read one by one: one problem.
        let started = std::time::Instant::now();
        let empty_entries = format!("version: 1\nintegrations:\n{}", "- {}\n".repeat(90_000));
        assert_eq!(places(&empty_entries), ["integrations: 90000 entries: a file holds at most 500; split it"]);
        // Nor does a problem cost a look through those found before.
        let unknown: String = (0..5_000).map(|n| format!("  f{n}: 1\n")).collect();
        let long_name = "n".repeat(20_000);
        let fields = format!("version: 1\nintegrations:\n- name: {long_name}\n{unknown}");
        let problems = parse(&fields).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(problems.len(), 5_001, "the unknown fields, and the provider missing");
        let place = format!("integrations[0] ({}…).f0", "n".repeat(64));
        assert!(problems.iter().any(|p| p.place == place), "the name is cut in the places: {:?}", &problems[0]);
    }

    /// The classic "billion laughs": each level a list of ten aliases of
    /// the one before, nine levels: 10^9 values in 500 bytes.
    fn billion_laughs(levels: usize, width: usize) -> String {
        let mut text = format!("lol0: &lol0 [{}]\n", vec!["lol"; width].join(", "));
        for level in 1..levels {
            let aliases = vec![format!("*lol{}", level - 1); width].join(", ");
            let _ = writeln!(text, "lol{level}: &lol{level} [{aliases}]");
        }
        text
    }

    /// The one problem of a file refused by a limit, in well under a second.
    fn refused_quickly(text: &str) -> Problem {
        let started = std::time::Instant::now();
        let problems = parse(text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].clone()
    }

    #[test]
    fn a_wide_alias_bomb_is_refused_before_it_expands() {
        let classic = billion_laughs(9, 10);
        let wide = billion_laughs(3, 120);
        for bomb in [&classic, &wide] {
            assert!(bomb.len() < 4 * 1024, "{}", bomb.len());
            let problem = refused_quickly(bomb);
            assert!(problem.place.starts_with("line "), "{problem}");
            assert!(
                problem.message.contains("more than 100000 values, each alias counted as all it repeats"),
                "{problem}"
            );
        }
        // Text repeated through aliases counts too: a value of 600 KiB, eight times.
        let long = format!("a: &a {}\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n", "x".repeat(600 * 1024));
        let problem = refused_quickly(&long);
        assert!(problem.message.contains("more than 4 MiB of text"), "{problem}");
    }

    #[test]
    fn a_deep_alias_bomb_is_refused_before_it_expands() {
        // Each alias one level deeper than the one it names.
        let mut chain = String::from("d0: &d0 [x]\n");
        for level in 1..=20 {
            let _ = writeln!(chain, "d{level}: &d{level} [*d{}]", level - 1);
        }
        let problem = refused_quickly(&chain);
        assert!(problem.message.contains("nested more than 16 deep, aliases included"), "{problem}");
        // And nesting written out, in flow style and in block style.
        let flow = format!("version: 1\nintegrations: {}{}\n", "[".repeat(200), "]".repeat(200));
        let block: String = (0..200).map(|level| format!("{}-\n", "  ".repeat(level))).collect();
        for deep in [flow, block] {
            let problem = refused_quickly(&deep);
            assert!(problem.message.contains("nested more than 16 deep"), "{problem}");
        }
        // An alias inside of what it names would never end.
        assert_eq!(places("a: &a [x, *a]\n"), ["line 1, column 11: an alias inside of what it names"]);
    }

    #[test]
    fn a_file_sharing_values_through_a_few_aliases_reads() {
        let text = "version: 1\nintegrations:\n\
                    - name: first\n  provider: bitbucket_datacenter\n  scope: default\n\
                    \x20 options: &options {commit_status: false, vcs_checks: all, pr_comments: off}\n\
                    \x20 datacenter: &dc {api_url: https://b.example.com, username: &bot bot}\n\
                    - name: second\n  provider: bitbucket_datacenter\n  space: team\n  labels: [*bot]\n\
                    \x20 options: *options\n  datacenter: *dc\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].options, entries[1].options);
        assert_eq!(entries[1].options.vcs_checks, VcsChecks::All);
        assert_eq!(entries[1].options.pr_comments, PrComments::Off);
        assert_eq!(entries[0].credentials, entries[1].credentials);
        assert_eq!(entries[1].labels, ["bot"]);
    }

    #[test]
    fn the_largest_file_the_reader_takes_is_within_the_limits() {
        let mut full = datacenter("x", Scope::Space("a-space-with-a-long-name".into()));
        full.labels = vec!["prod".into(), "eu".into(), "team-a".into()];
        full.webhook_secret = Some("a-webhook-secret-of-some-length".into());
        let Credentials::DataCenter { ca_certificate, access_token, .. } = &mut full.credentials else { panic!() };
        *access_token = Some("BBDC-a-token-of-some-length".into());
        *ca_certificate =
            Some(format!("-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n", "MIIB\n".repeat(4)));
        let entries: Vec<Entry> =
            (0..MAX_ENTRIES).map(|n| Entry { name: format!("integration-{n}"), ..full.clone() }).collect();
        let text = render(&entries);
        assert!(text.len() < MAX_FILE, "{}", text.len());
        assert_eq!(parse(&text).unwrap(), entries);
    }

    #[test]
    fn yaml_that_would_be_read_differently_is_refused_where_it_is() {
        assert_eq!(places("version: 1\nversion: 1\n"), ["line 2, column 1: version is a key of this mapping twice"]);
        assert_eq!(
            places("version: 1\n---\nversion: 1\n"),
            ["line 2, column 1: a second document: an integrations file is one document"]
        );
        assert_eq!(
            places("version: !custom 1\n"),
            ["line 1, column 10: the tag !custom is not read here: write the value without it"]
        );
        // `!!str` says what a value is: text, as written.
        let named = "name: !!str 2024\ntype: bitbucketserver\nurl: u\nauth: {user: a, token: b}\n";
        assert_eq!(parse(named).unwrap()[0].name, "2024");
    }

    #[test]
    fn invalid_yaml_names_its_line_and_column() {
        let problems = places("version: 1\nintegrations:\n  - name: [unclosed\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("line 4, column 1: "), "{problems:?}");
        assert_eq!(places(""), ["file: empty"]);
        assert_eq!(
            places("- just\n- text\n"),
            ["integrations[0]: must be a mapping", "integrations[1]: must be a mapping"]
        );
    }

    #[test]
    fn every_problem_of_the_file_is_listed_at_once() {
        let text = r#"
version: 2
colour: blue
integrations:
  - name: dc-main
    provider: bitbucket_datacenter
    scope: space
    labels: oops
    options: {commit_status: "yes", vcs_checks: sometimes, pr_comments: never}
    datacenter: {api_url: https://b.example.com, usrname: bot}
  - name: DC-MAIN
    provider: bitbucket_cloud
    scope: default
    space: platform
    cloud: {workspace: acme}
    datacenter: {api_url: x}
  - name: other
    provider: gitlab
  - name: d1
    provider: bitbucket_datacenter
    scope: default
    datacenter: {api_url: https://a, username: u}
  - name: d2
    provider: bitbucket_datacenter
    scope: default
    datacenter: {api_url: https://a, username: u}
"#;
        let problems = places(text);
        for expected in [
            "version: must be 1",
            "colour: unknown field",
            "integrations[0] (dc-main).space: missing: the name of the space (or write scope: default)",
            "integrations[0] (dc-main).labels: must be a list of text",
            "integrations[0] (dc-main).options.commit_status: must be true or false",
            "integrations[0] (dc-main).options.vcs_checks: must be individual, aggregated or all",
            "integrations[0] (dc-main).options.pr_comments: must be off, failures or always",
            "integrations[0] (dc-main).datacenter.username: missing",
            "integrations[0] (dc-main).datacenter.usrname: unknown field",
            "integrations[1] (DC-MAIN).space: a default integration has no space: remove it, or write scope: space",
            "integrations[1] (DC-MAIN).datacenter: not a field of a Bitbucket Cloud integration",
            "integrations[1] (DC-MAIN).cloud.client_id: missing",
            "integrations[2] (other).provider: must be bitbucket_datacenter or bitbucket_cloud",
            "integrations[4] (d2): a second default Bitbucket Data Center integration: a provider has one default",
        ] {
            assert!(problems.contains(&expected.to_owned()), "{expected}\n in {problems:#?}");
        }
        assert_eq!(problems.len(), 14, "{problems:#?}");
        // Names are compared without regard to case once the entries read.
        let twice = "version: 1\nintegrations:\n  - {name: a, provider: bitbucket_cloud, scope: space, space: s, cloud: {workspace: w, client_id: k}}\n  - {name: A, provider: bitbucket_cloud, scope: space, space: s, cloud: {workspace: w, client_id: k}}\n";
        assert_eq!(places(twice), ["integrations[1] (A): this name is in the file twice"]);
    }

    /// Every key of `value` (a mapping, at any depth) is named in `schema`.
    fn assert_in_schema(value: &Value, schema: &serde_json::Value, path: &str) {
        let Value::Mapping(map) = value else { return };
        for (key, nested) in map.iter() {
            let property = &schema["properties"][key];
            assert!(property.is_object(), "the schema lacks {path}{key}");
            assert_in_schema(nested, property, &format!("{path}{key}."));
        }
    }

    #[test]
    fn the_schema_names_the_fields_the_reader_knows() {
        let schema = super::super::schema::schema();
        let entry = &schema["$defs"]["entry"];
        let mut full = cloud("c");
        full.scope = Scope::Space("s".into());
        full.description = "d".into();
        full.labels = vec!["l".into()];
        let text =
            render(&[datacenter("d", Scope::Space("s".into())), linked("o"), legacy("l", Some("bitgate-l")), full]);
        let Value::Mapping(rendered) = yaml::load(&text).unwrap() else { panic!("{text}") };
        let Some(Value::Sequence(items)) = rendered.get("integrations") else { panic!("{text}") };
        for item in items.iter() {
            assert!(matches!(item, Value::Mapping(_)), "{text}");
            assert_in_schema(item, entry, "");
        }
        // And every field the schema names is one the reader takes, for
        // the way to authenticate it belongs to.
        let entry = &entry["properties"];
        let unknown = |file: &str, field: &str| {
            let problems = parse(file).err().unwrap_or_default();
            assert!(!problems.iter().any(|p| p.message == "unknown field"), "{field}: {problems:?}");
        };
        let head = "version: 1\nintegrations:\n  - name: n\n    provider: bitbucket_datacenter\n    scope: default\n";
        for (key, property) in entry.as_object().unwrap() {
            if let Some(nested) = property["properties"].as_object() {
                for nested_key in nested.keys() {
                    let field = format!("      {nested_key}: x\n");
                    let (in_datacenter, apart) = if key == "datacenter" {
                        (field.as_str(), String::new())
                    } else {
                        ("", format!("    {key}:\n{field}"))
                    };
                    let file =
                        format!("{head}    datacenter:\n      api_url: a\n      username: u\n{in_datacenter}{apart}");
                    unknown(&file, &format!("{key}.{nested_key}"));
                }
            }
        }
        let link = entry["datacenter"]["properties"]["oauth2"]["properties"].as_object().unwrap();
        assert!(link.contains_key("client_id") && link.contains_key("client_secret"), "{link:?}");
        for link_key in link.keys() {
            let file = format!(
                "{head}    datacenter:\n      api_url: a\n      auth: oauth2\n      oauth2:\n        {link_key}: x\n"
            );
            unknown(&file, &format!("datacenter.oauth2.{link_key}"));
        }
        let link = entry["datacenter"]["properties"]["oauth1"]["properties"].as_object().unwrap();
        assert_eq!(link.keys().collect::<Vec<_>>(), ["consumer_key"], "never a key");
        for link_key in link.keys() {
            let file = format!(
                "{head}    datacenter:\n      api_url: a\n      auth: oauth1\n      oauth1:\n        {link_key}: x\n"
            );
            unknown(&file, &format!("datacenter.oauth1.{link_key}"));
        }
        // The reader's ways, the schema's.
        assert_eq!(
            entry["datacenter"]["properties"]["auth"]["enum"],
            serde_json::json!(["access_token", "oauth2", "oauth1"])
        );
        assert_eq!(entry["datacenter"]["required"], serde_json::json!(["api_url"]), "username: access tokens only");
        assert_eq!(entry["datacenter"]["if"]["properties"]["auth"]["const"], "oauth2");
        assert_eq!(entry["datacenter"]["else"]["if"]["properties"]["auth"]["const"], "oauth1");
        assert_eq!(entry["datacenter"]["else"]["else"]["required"], serde_json::json!(["username"]));
    }
}
