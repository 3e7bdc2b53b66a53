//! What a request asks of an integration, as every door reads it: the REST
//! API's JSON, the wizard's form, the edit page. The doors only move text
//! into these fields (a JSON reader also notes fields it does not know or
//! whose type is wrong); what the text must be is decided here, once, with
//! every problem named by its API field (`datacenter.api_url`).

use url::Url;

use super::{
    parse_description, parse_labels, parse_name, parse_pr_comments, parse_vcs_checks, DataCenterAuth, Options, Provider,
};
use crate::{
    bitbucket::{
        cloud::{self, Consumer, Mode},
        datacenter::{self, oauth2},
    },
    config::Config,
    secret::Secret,
    users::FieldError,
    validation::Problems,
};

/// The fields of a creation or a change; `None`: not given (a change keeps
/// what is stored). Holds secrets: it has no `Debug`.
#[derive(Default)]
pub struct IntegrationInput {
    /// What the door's reader found wrong before the values (a field it
    /// does not know, a number where text goes): reported with the rest,
    /// after authorization.
    pub read_problems: Vec<FieldError>,
    pub name: Option<String>,
    pub provider: Option<String>,
    /// `default` or `space`.
    pub scope: Option<String>,
    pub space_id: Option<String>,
    pub labels: Option<Vec<String>>,
    pub description: Option<String>,
    pub options: Option<OptionsInput>,
    pub datacenter: Option<DataCenterInput>,
    pub cloud: Option<CloudInput>,
}

#[derive(Default)]
pub struct OptionsInput {
    pub use_git_checkout: Option<bool>,
    pub commit_status: Option<bool>,
    pub status_details: Option<bool>,
    pub vcs_checks: Option<String>,
    pub pr_comments: Option<String>,
    pub manage_webhooks: Option<bool>,
    pub disable_polling: Option<bool>,
    pub disable_webhooks: Option<bool>,
}

#[derive(Default)]
pub struct DataCenterInput {
    pub api_url: Option<String>,
    pub user_facing_url: Option<String>,
    /// `access_token` (the default), `oauth2`.
    pub auth: Option<String>,
    pub username: Option<String>,
    pub access_token: Option<Secret<String>>,
    pub oauth2: Option<OAuth2Input>,
    pub oauth1: Option<OAuth1Input>,
    pub ca_certificate: Option<String>,
}

/// An OAuth 1.0a application link's consumer key (Bitgate's own when left
/// out); the key pair is Bitgate's to make.
#[derive(Default)]
pub struct OAuth1Input {
    pub consumer_key: Option<String>,
}

/// An OAuth 2.0 application link's client.
#[derive(Default)]
pub struct OAuth2Input {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
}

impl OAuth2Input {
    /// Whether any of it was given (a blank form field is not).
    pub fn is_given(&self) -> bool {
        self.client_id.as_deref().is_some_and(|v| !v.trim().is_empty())
            || self.client_secret.as_ref().is_some_and(|v| !v.expose().trim().is_empty())
    }
}

#[derive(Default)]
pub struct CloudInput {
    pub workspace: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub mode: Option<String>,
}

/// Text that means "not given" when blank (a form's empty field).
pub fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A validated name and the webhook endpoint's slug made from it.
pub fn name(problems: &mut Problems, raw: Option<String>) -> Option<(String, String)> {
    let raw = problems.required("name", raw)?;
    problems.check(parse_name(&raw))
}

pub fn provider(problems: &mut Problems, raw: Option<String>) -> Option<Provider> {
    let raw = problems.required("provider", raw)?;
    problems.check(Provider::parse(&raw))
}

pub fn labels(problems: &mut Problems, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    problems.check(parse_labels(&raw?))
}

pub fn description(problems: &mut Problems, raw: Option<String>) -> Option<String> {
    problems.check(parse_description(&raw?))
}

/// Options over `base`: each option left out keeps the base's value (the
/// defaults for a creation, the stored ones for a change).
pub fn options(problems: &mut Problems, base: &Options, input: OptionsInput) -> Option<Options> {
    // Both parsed before giving up, so that two bad values are both reported.
    let vcs_checks = match input.vcs_checks {
        Some(raw) => problems.check(parse_vcs_checks(&raw)),
        None => Some(base.vcs_checks),
    };
    let pr_comments = match input.pr_comments {
        Some(raw) => problems.check(parse_pr_comments(&raw)),
        None => Some(base.pr_comments),
    };
    let webhooks = webhook_options(problems, base, input.manage_webhooks, input.disable_webhooks);
    let (manage_webhooks, disable_webhooks) = webhooks?;
    Some(Options {
        use_git_checkout: input.use_git_checkout.unwrap_or(base.use_git_checkout),
        commit_status: input.commit_status.unwrap_or(base.commit_status),
        status_details: input.status_details.unwrap_or(base.status_details),
        vcs_checks: vcs_checks?,
        pr_comments: pr_comments?,
        manage_webhooks,
        disable_polling: input.disable_polling.unwrap_or(base.disable_polling),
        disable_webhooks,
    })
}

/// `manage_webhooks` and `disable_webhooks` over `base`, as (manage,
/// disable): webhooks disabled keep management off. Turning
/// `disable_webhooks` on without a word of `manage_webhooks` turns
/// management off with it; asking for both on is refused, on
/// `options.manage_webhooks`, rather than one of them being dropped.
pub fn webhook_options(
    problems: &mut Problems,
    base: &Options,
    manage_webhooks: Option<bool>,
    disable_webhooks: Option<bool>,
) -> Option<(bool, bool)> {
    let disable = disable_webhooks.unwrap_or(base.disable_webhooks);
    let manage = match (manage_webhooks, disable_webhooks) {
        (Some(manage), _) => manage,
        (None, Some(true)) => false,
        (None, _) => base.manage_webhooks,
    };
    if manage && disable {
        problems.push(
            "options.manage_webhooks",
            "webhooks_disabled",
            "Bitgate cannot manage webhooks that are disabled: turn manage_webhooks off to keep them disabled, \
             or turn disable_webhooks off to let Bitgate manage them.",
        );
        return None;
    }
    Some((manage, disable))
}

/// The object of the other provider is not a field of this integration.
pub fn refuse_other_provider(problems: &mut Problems, provider: Provider, datacenter: bool, cloud: bool) {
    match provider {
        Provider::Cloud if datacenter => {
            problems.push("datacenter", "wrong_provider", "Not a field of a Bitbucket Cloud integration.")
        }
        Provider::DataCenter if cloud => {
            problems.push("cloud", "wrong_provider", "Not a field of a Bitbucket Data Center integration.")
        }
        _ => {}
    }
}

/// An API URL, normalized and checked against the outbound policy.
pub fn api_url(problems: &mut Problems, raw: &str, config: &Config) -> Option<Url> {
    datacenter::parse_api_url(raw, config).map_err(|why| problems.push("datacenter.api_url", "invalid", why)).ok()
}

/// A user-facing URL: http or https, stored without a trailing slash.
pub fn user_facing_url(problems: &mut Problems, raw: &str) -> Option<String> {
    match Url::parse(raw.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url.as_str().trim_end_matches('/').to_owned()),
        _ => {
            problems.push("datacenter.user_facing_url", "invalid", "Use an http:// or https:// URL.");
            None
        }
    }
}

/// A CA certificate as stored (trimmed PEM) and as the checks use it.
pub fn ca_certificate(problems: &mut Problems, raw: &str) -> Option<(String, reqwest::Certificate)> {
    match datacenter::parse_ca_certificate(raw) {
        Ok(parsed) => Some((raw.trim().to_owned(), parsed)),
        Err(why) => {
            problems.push("datacenter.ca_certificate", "invalid", why);
            None
        }
    }
}

/// New Data Center credentials, validated: how it authenticates, the
/// user-facing URL and the CA certificate's PEM as stored.
pub struct NewDataCenterCredentials {
    pub auth: NewDataCenterAuth,
    pub user_facing_url: String,
    pub ca_certificate: Option<String>,
}

pub enum NewDataCenterAuth {
    /// The connection to check.
    AccessToken(Box<datacenter::Connection>),
    /// The client to check (a token request with a code that cannot exist).
    OAuth2 { api_url: Url, ca: Option<reqwest::Certificate>, client: oauth2::Client },
    /// The consumer key given, if any; the key pair is made on creation.
    OAuth1 { api_url: Url, ca: Option<reqwest::Certificate>, consumer_key: Option<String> },
}

/// How a Data Center integration authenticates: `access_token` unless said.
pub fn datacenter_auth(problems: &mut Problems, raw: Option<String>) -> Option<DataCenterAuth> {
    match given(raw) {
        None => Some(DataCenterAuth::AccessToken),
        Some(raw) => DataCenterAuth::parse(raw.trim()).or_else(|| {
            problems.push("datacenter.auth", "invalid", "Choose access_token, oauth2 or oauth1.");
            None
        }),
    }
}

/// The fields of the other way to authenticate are not this one's: said,
/// rather than silently dropped.
pub fn refuse_other_auth(problems: &mut Problems, auth: DataCenterAuth, input: &DataCenterInput) {
    let token_given = input.access_token.as_ref().is_some_and(|t| !t.expose().trim().is_empty());
    let oauth2_given = input.oauth2.as_ref().is_some_and(OAuth2Input::is_given);
    let oauth1_given =
        input.oauth1.as_ref().is_some_and(|o| o.consumer_key.as_deref().is_some_and(|k| !k.trim().is_empty()));
    let given = [
        (DataCenterAuth::AccessToken, "datacenter.access_token", token_given),
        (DataCenterAuth::OAuth2, "datacenter.oauth2", oauth2_given),
        (DataCenterAuth::OAuth1, "datacenter.oauth1", oauth1_given),
    ];
    for (kind, field, _) in given.into_iter().filter(|(kind, _, given)| *given && *kind != auth) {
        problems.push(
            field,
            "wrong_auth",
            format!(
                "Not a field of an integration that authenticates with {}: set auth to {} to use it.",
                auth_in_words(auth),
                kind.as_str()
            ),
        );
    }
}

fn auth_in_words(auth: DataCenterAuth) -> &'static str {
    match auth {
        DataCenterAuth::AccessToken => "an access token",
        DataCenterAuth::OAuth2 => "OAuth 2.0",
        DataCenterAuth::OAuth1 => "OAuth 1.0a",
    }
}

/// An OAuth 1.0a link's consumer key, as given (`None`: Bitgate's own).
pub fn oauth1_consumer_key(problems: &mut Problems, input: Option<OAuth1Input>) -> Option<Option<String>> {
    let Some(key) = given(input.and_then(|o| o.consumer_key)) else { return Some(None) };
    let key = key.trim().to_owned();
    if key.len() > 255 || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        problems.push(
            "datacenter.oauth1.consumer_key",
            "invalid",
            "A consumer key is one word of at most 255 characters.",
        );
        return None;
    }
    Some(Some(key))
}

/// An application link's client id and secret, both required.
pub fn oauth2_client(problems: &mut Problems, input: Option<OAuth2Input>) -> Option<oauth2::Client> {
    let input = input.unwrap_or_default();
    let id = problems.filled(
        "datacenter.oauth2.client_id",
        input.client_id,
        "Paste the client ID Bitbucket shows for the application link.",
    );
    let secret = problems.filled_secret(
        "datacenter.oauth2.client_secret",
        input.client_secret,
        "Paste the client secret Bitbucket shows for the application link.",
    );
    let id = id?.trim().to_owned();
    if id.len() > 255 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        problems.push("datacenter.oauth2.client_id", "invalid", "A client ID is one word of at most 255 characters.");
        return None;
    }
    Some(oauth2::Client { id, secret: secret? })
}

pub fn new_datacenter(
    problems: &mut Problems,
    input: Option<DataCenterInput>,
    config: &Config,
) -> Option<NewDataCenterCredentials> {
    let Some(input) = input else {
        problems.push("datacenter", "required", "Give the Data Center credentials.");
        return None;
    };
    let auth = datacenter_auth(problems, input.auth.clone());
    if let Some(auth) = auth {
        refuse_other_auth(problems, auth, &input);
    }
    let api_url =
        problems.required("datacenter.api_url", input.api_url).and_then(|raw| api_url(problems, &raw, config));
    let user_facing = match given(input.user_facing_url) {
        Some(raw) => user_facing_url(problems, &raw),
        None => api_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_owned()),
    };
    let DataCenterInput { username, access_token, oauth2, oauth1, ca_certificate: ca_pem, .. } = input;
    // Every field is read before any early return, so that all problems are said at once.
    enum Read {
        Token(Option<String>, Option<Secret<String>>),
        Link(Option<oauth2::Client>),
        Legacy(Option<Option<String>>),
    }
    let credential = match auth? {
        DataCenterAuth::AccessToken => Read::Token(
            problems.filled("datacenter.username", username, "Enter the Bitbucket username the token belongs to."),
            problems.filled_secret("datacenter.access_token", access_token, "Paste the HTTP access token."),
        ),
        DataCenterAuth::OAuth2 => Read::Link(oauth2_client(problems, oauth2)),
        DataCenterAuth::OAuth1 => Read::Legacy(oauth1_consumer_key(problems, oauth1)),
    };
    let ca = match given(ca_pem) {
        Some(pem) => Some(ca_certificate(problems, &pem)?),
        None => None,
    };
    let (ca_certificate, ca) = ca.map_or((None, None), |(pem, parsed)| (Some(pem), Some(parsed)));
    let auth = match credential {
        Read::Token(username, token) => NewDataCenterAuth::AccessToken(Box::new(datacenter::Connection {
            api_url: api_url?,
            username: username?,
            token: token?,
            ca,
            oauth1: None,
        })),
        Read::Link(client) => NewDataCenterAuth::OAuth2 { api_url: api_url?, ca, client: client? },
        Read::Legacy(consumer_key) => NewDataCenterAuth::OAuth1 { api_url: api_url?, ca, consumer_key: consumer_key? },
    };
    Some(NewDataCenterCredentials { auth, user_facing_url: user_facing?, ca_certificate })
}

/// New Cloud credentials, validated.
pub struct NewCloudCredentials {
    pub workspace: String,
    pub consumer: Consumer,
    pub mode: Mode,
}

pub fn mode(problems: &mut Problems, raw: Option<String>) -> Option<Mode> {
    match given(raw) {
        None => Some(Mode::AuthorizationCode),
        Some(raw) => Mode::parse(raw.trim()).or_else(|| {
            problems.push("cloud.mode", "invalid", "Choose authorization_code or client_credentials.");
            None
        }),
    }
}

pub fn workspace(problems: &mut Problems, raw: &str) -> Option<String> {
    cloud::parse_workspace(raw).map_err(|why| problems.push("cloud.workspace", "invalid", why)).ok()
}

pub fn new_cloud(problems: &mut Problems, input: Option<CloudInput>) -> Option<NewCloudCredentials> {
    let Some(input) = input else {
        problems.push("cloud", "required", "Give the workspace and the OAuth consumer's key and secret.");
        return None;
    };
    let workspace = problems.required("cloud.workspace", input.workspace).and_then(|raw| workspace(problems, &raw));
    let key = problems.filled("cloud.client_id", input.client_id, "Paste the consumer's Key.");
    let secret = problems.filled_secret("cloud.client_secret", input.client_secret, "Paste the consumer's Secret.");
    let mode = mode(problems, input.mode);
    Some(NewCloudCredentials { workspace: workspace?, consumer: Consumer { key: key?, secret: secret? }, mode: mode? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::{PrComments, VcsChecks};

    fn config() -> Config {
        Config::load(&[("BITGATE_MODE", "development")]).unwrap()
    }

    fn fields(problems: &Problems) -> Vec<(&str, &str)> {
        problems.0.iter().map(|p| (p.field.as_str(), p.code.as_str())).collect()
    }

    #[test]
    fn missing_and_blank_credentials_are_named_by_their_api_field() {
        let mut problems = Problems::default();
        let input = DataCenterInput { api_url: None, username: Some("  ".into()), ..Default::default() };
        assert!(new_datacenter(&mut problems, Some(input), &config()).is_none());
        assert_eq!(
            fields(&problems),
            [
                ("datacenter.api_url", "required"),
                ("datacenter.username", "required"),
                ("datacenter.access_token", "required")
            ]
        );
        assert_eq!(problems.0[0].message, "\"api_url\" is required.");
        assert_eq!(problems.0[1].message, "Enter the Bitbucket username the token belongs to.");

        let mut problems = Problems::default();
        assert!(new_cloud(&mut problems, None).is_none());
        assert_eq!(fields(&problems), [("cloud", "required")]);
    }

    #[test]
    fn valid_datacenter_credentials_come_out_normalized() {
        let mut problems = Problems::default();
        let input = DataCenterInput {
            api_url: Some(" https://bitbucket.example.com/ ".into()),
            user_facing_url: Some("".into()),
            username: Some(" ada ".into()),
            access_token: Some(" token ".into()),
            ca_certificate: Some(" ".into()),
            ..Default::default()
        };
        let credentials = new_datacenter(&mut problems, Some(input), &config()).unwrap();
        assert!(problems.is_empty());
        assert_eq!(credentials.user_facing_url, "https://bitbucket.example.com", "the API URL, when left blank");
        let NewDataCenterAuth::AccessToken(connection) = credentials.auth else { panic!("an access token") };
        assert_eq!((connection.username.as_str(), connection.token.expose().as_str()), ("ada", "token"));
        assert!(credentials.ca_certificate.is_none() && connection.ca.is_none());
    }

    #[test]
    fn an_oauth2_link_needs_its_client_and_none_of_a_token_s_fields() {
        let oauth2 = |id: &str, secret: &str| {
            Some(OAuth2Input { client_id: Some(id.into()), client_secret: Some(secret.to_owned().into()) })
        };
        let mut problems = Problems::default();
        let input = DataCenterInput {
            api_url: Some("https://bitbucket.example.com".into()),
            auth: Some("oauth2".into()),
            oauth2: oauth2(" 7f3a9c ", " s3cret "),
            ..Default::default()
        };
        let credentials = new_datacenter(&mut problems, Some(input), &config()).unwrap();
        assert!(problems.is_empty());
        let NewDataCenterAuth::OAuth2 { client, .. } = credentials.auth else { panic!("an OAuth 2.0 link") };
        assert_eq!((client.id.as_str(), client.secret.expose().trim()), ("7f3a9c", "s3cret"));

        let mut problems = Problems::default();
        let input = DataCenterInput {
            api_url: Some("https://bitbucket.example.com".into()),
            auth: Some("oauth2".into()),
            access_token: Some("token".to_owned().into()),
            oauth2: oauth2("", "s"),
            ..Default::default()
        };
        assert!(new_datacenter(&mut problems, Some(input), &config()).is_none());
        assert_eq!(
            fields(&problems),
            [("datacenter.access_token", "wrong_auth"), ("datacenter.oauth2.client_id", "required")]
        );

        let mut problems = Problems::default();
        let input = DataCenterInput {
            api_url: Some("https://bitbucket.example.com".into()),
            auth: Some("oauth3".into()),
            ..Default::default()
        };
        assert!(new_datacenter(&mut problems, Some(input), &config()).is_none());
        assert_eq!(fields(&problems), [("datacenter.auth", "invalid")]);

        let mut problems = Problems::default();
        let input = DataCenterInput {
            api_url: Some("https://bitbucket.example.com".into()),
            username: Some("ada".into()),
            access_token: Some("token".to_owned().into()),
            oauth2: oauth2("id", ""),
            ..Default::default()
        };
        new_datacenter(&mut problems, Some(input), &config());
        assert_eq!(fields(&problems), [("datacenter.oauth2", "wrong_auth")]);
    }

    #[test]
    fn options_left_out_keep_their_base() {
        let stored =
            Options { use_git_checkout: true, commit_status: false, vcs_checks: VcsChecks::All, ..Options::default() };
        let mut problems = Problems::default();
        let merged = options(&mut problems, &stored, OptionsInput { commit_status: Some(true), ..Default::default() });
        assert_eq!(merged, Some(Options { commit_status: true, ..stored.clone() }));
        let refused =
            options(&mut problems, &stored, OptionsInput { vcs_checks: Some("some".into()), ..Default::default() });
        assert!(refused.is_none());
        assert_eq!(fields(&problems), [("options.vcs_checks", "invalid")]);
    }

    #[test]
    fn pr_comments_is_kept_changed_or_refused_by_its_api_field() {
        let stored = Options { pr_comments: PrComments::Always, ..Options::default() };
        let mut problems = Problems::default();
        let kept = options(&mut problems, &stored, OptionsInput { commit_status: Some(false), ..Default::default() });
        assert_eq!(kept.map(|o| o.pr_comments), Some(PrComments::Always), "left out, kept");
        let changed =
            options(&mut problems, &stored, OptionsInput { pr_comments: Some("off".into()), ..Default::default() });
        assert_eq!(changed, Some(Options { pr_comments: PrComments::Off, ..stored.clone() }));
        assert!(problems.is_empty());

        let both_bad = OptionsInput {
            vcs_checks: Some("some".into()),
            pr_comments: Some("sometimes".into()),
            ..Default::default()
        };
        assert!(options(&mut problems, &stored, both_bad).is_none());
        assert_eq!(fields(&problems), [("options.vcs_checks", "invalid"), ("options.pr_comments", "invalid")]);
        assert_eq!(problems.0[1].message, "Choose off, failures or always.");
    }

    #[test]
    fn the_webhook_options_are_kept_changed_or_given_their_defaults() {
        let created = options(&mut Problems::default(), &Options::default(), OptionsInput::default()).unwrap();
        assert_eq!(
            (created.manage_webhooks, created.disable_polling, created.disable_webhooks),
            (true, false, false),
            "SPEC's defaults"
        );
        let stored = Options { manage_webhooks: false, disable_polling: true, ..Options::default() };
        let mut problems = Problems::default();
        let kept = options(&mut problems, &stored, OptionsInput { commit_status: Some(false), ..Default::default() });
        assert_eq!(kept, Some(Options { commit_status: false, ..stored.clone() }), "left out, kept");
        let changed = OptionsInput { manage_webhooks: Some(true), disable_polling: Some(false), ..Default::default() };
        assert_eq!(
            options(&mut problems, &stored, changed),
            Some(Options { manage_webhooks: true, disable_polling: false, ..stored.clone() })
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn disabling_webhooks_turns_their_management_off_unless_it_is_asked_for() {
        let mut problems = Problems::default();
        let managed = Options::default();
        let disable = OptionsInput { disable_webhooks: Some(true), ..Default::default() };
        let disabled = options(&mut problems, &managed, disable).unwrap();
        assert_eq!((disabled.manage_webhooks, disabled.disable_webhooks), (false, true), "management follows");
        // Both said: as said, when they agree.
        let both = OptionsInput { manage_webhooks: Some(false), disable_webhooks: Some(true), ..Default::default() };
        assert_eq!(options(&mut problems, &managed, both).map(|o| o.manage_webhooks), Some(false));
        // Turned on again: management stays off until asked for.
        let enable = OptionsInput { disable_webhooks: Some(false), ..Default::default() };
        let enabled = options(&mut problems, &disabled, enable).unwrap();
        assert_eq!((enabled.manage_webhooks, enabled.disable_webhooks), (false, false));
        let enable_and_manage =
            OptionsInput { manage_webhooks: Some(true), disable_webhooks: Some(false), ..Default::default() };
        let managed_again = options(&mut problems, &disabled, enable_and_manage).unwrap();
        assert_eq!((managed_again.manage_webhooks, managed_again.disable_webhooks), (true, false));
        assert!(problems.is_empty());
    }

    #[test]
    fn managing_disabled_webhooks_is_refused_on_manage_webhooks() {
        let disabled = Options { manage_webhooks: false, disable_webhooks: true, ..Options::default() };
        let both = || OptionsInput { manage_webhooks: Some(true), disable_webhooks: Some(true), ..Default::default() };
        let manage_only = OptionsInput { manage_webhooks: Some(true), ..Default::default() };
        for (base, input) in [(&Options::default(), both()), (&disabled, both()), (&disabled, manage_only)] {
            let mut problems = Problems::default();
            assert!(options(&mut problems, base, input).is_none());
            assert_eq!(fields(&problems), [("options.manage_webhooks", "webhooks_disabled")]);
            assert!(problems.0[0].message.contains("turn disable_webhooks off"), "{}", problems.0[0].message);
        }
        // Reported with the other options' problems, not instead of them.
        let mut problems = Problems::default();
        let also_bad = OptionsInput { pr_comments: Some("sometimes".into()), ..both() };
        assert!(options(&mut problems, &Options::default(), also_bad).is_none());
        assert_eq!(
            fields(&problems),
            [("options.pr_comments", "invalid"), ("options.manage_webhooks", "webhooks_disabled")]
        );
    }

    #[test]
    fn the_other_providers_object_is_refused() {
        let mut problems = Problems::default();
        refuse_other_provider(&mut problems, Provider::DataCenter, false, true);
        refuse_other_provider(&mut problems, Provider::Cloud, false, true);
        assert_eq!(fields(&problems), [("cloud", "wrong_provider")]);
    }
}
