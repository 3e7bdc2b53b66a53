//! Pages rendered from fixture data, without HTTP: the variant of the page
//! data chooses the page, and what the page shows comes from its data.

use std::sync::Arc;

use leptos::prelude::*;

use crate::{
    context::{
        Flash, FormOutcome, LoginPage, PageContext, PageData, StackPage, TokenRow, TokensPage, Viewer, WizardPage,
    },
    App,
};

fn viewer() -> Viewer {
    Viewer {
        user_id: "7".into(),
        email: "ada@example.com".into(),
        name: "Ada".into(),
        is_account_admin: false,
        csrf_token: "csrf-of-this-session".into(),
    }
}

/// The HTML of `App` for a request with this context, as the server renders it.
fn render(context: PageContext) -> String {
    Owner::new().with(|| {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.extensions.insert(Arc::new(context));
        provide_context(parts);
        view! { <App /> }.to_html()
    })
}

fn with_viewer(page: PageData) -> PageContext {
    PageContext { viewer: Some(viewer()), page, ..PageContext::default() }
}

/// A token made on 2026-12-01, never expiring.
fn terraform_token(last_used_at: Option<&str>) -> TokenRow {
    TokenRow {
        id: "d6f1".into(),
        name: "terraform".into(),
        prefix: "bgt_abcd".into(),
        created_at: "2026-12-01T10:00:00Z".into(),
        expires_at: None,
        last_used_at: last_used_at.map(str::to_owned),
    }
}

#[test]
fn the_tokens_page_shows_its_rows_and_the_new_secret_once() {
    let page = TokensPage {
        tokens: vec![terraform_token(Some("2026-12-02T11:00:00Z"))],
        created: Some(("ci".into(), "bgt_secret-shown-once".into())),
        ..TokensPage::default()
    };
    let html = render(with_viewer(PageData::Tokens(page)));
    assert!(html.contains("API tokens"), "{html}");
    assert!(html.contains("terraform") && html.contains("bgt_abcd"), "{html}");
    assert!(html.contains("bgt_secret-shown-once"), "the new token is shown: {html}");
    assert!(html.contains("/tokens/d6f1/revoke"), "each row can be revoked: {html}");
    assert!(html.contains("csrf-of-this-session"), "forms carry the session's CSRF token: {html}");

    // Each row's button posts the one actions form: the CSRF field is not repeated a row.
    let rows = |count: usize| {
        let page = TokensPage { tokens: vec![terraform_token(None); count], ..TokensPage::default() };
        render(with_viewer(PageData::Tokens(page)))
    };
    let (one, three) = (rows(1), rows(3));
    assert_eq!(three.matches("form=\"token-actions\"").count(), 3, "{three}");
    let csrf = |html: &str| html.matches("csrf-of-this-session").count();
    assert_eq!(csrf(&one), csrf(&three), "{three}");

    let html = render(with_viewer(PageData::Tokens(TokensPage { created: None, ..TokensPage::default() })));
    assert!(html.contains("No API tokens") && !html.contains("bgt_secret"), "{html}");
    assert!(!html.contains("cannot be shown again"), "{html}");

    // A repeat of the form: no secret, and what to do without it.
    let page = TokensPage {
        tokens: vec![terraform_token(None)],
        sent_again: Some(terraform_token(None)),
        ..TokensPage::default()
    };
    let html = render(with_viewer(PageData::Tokens(page)));
    assert!(html.contains("Token \u{201c}terraform\u{201d} was created; its secret cannot be shown again"), "{html}");
    assert!(html.contains("revoke this token and create another") && !html.contains("Copy it now"), "{html}");
    assert_eq!(html.matches("/tokens/d6f1/revoke").count(), 2, "revoked from the notice or its row: {html}");
}

#[test]
fn the_frame_folds_the_navigation_into_a_menu_and_tables_scroll_in_a_named_region() {
    let page = TokensPage { tokens: vec![terraform_token(None)], ..TokensPage::default() };
    let html = render(with_viewer(PageData::Tokens(page)));
    // The bar's navigation and the menu's (CSS shows one of them).
    assert_eq!(html.matches(r#"href="/stacks""#).count(), 2, "{html}");
    assert_eq!(html.matches("Log out").count(), 2, "{html}");
    assert!(html.contains(r#"<details class="menu"><summary>Menu</summary>"#), "{html}");
    assert!(!html.contains(r#"href="/users""#), "an account admin's sections only for one: {html}");
    let region = r#"<div role="region" aria-label="API tokens" tabindex="0" class="table-scroll"><table>"#;
    assert!(html.contains(region), "{html}");
    // Times read as people say them, the exact one in the tooltip.
    assert!(html.contains(r#"<time datetime="2026-12-01T10:00:00Z" title="2026-12-01 10:00:00 UTC">"#), "{html}");
    assert!(!html.contains(">2026-12-01T10:00:00Z<"), "not the stored form: {html}");
    assert!(html.contains("<span>never</span>"), "{html}");
}

#[test]
fn an_unknown_page_is_not_found_inside_the_console_or_on_its_own() {
    let html = render(with_viewer(PageData::NotFound));
    assert!(html.contains("Page not found") && html.contains("Log out"), "{html}");
    let html = render(PageContext::default());
    assert!(html.contains("Page not found") && !html.contains("Log out"), "{html}");
}

#[test]
fn the_login_page_keeps_where_to_return_and_says_why() {
    let page = LoginPage { next: "/stacks/12".into(), reason: Some("expired".into()) };
    let html = render(PageContext { page: PageData::Login(page), ..PageContext::default() });
    assert!(html.contains(r#"value="/stacks/12""#), "{html}");
    assert!(html.contains("Your session has expired"), "{html}");

    // A failed post keeps the posted `next` and shows the error above the form.
    let form = FormOutcome {
        values: vec![("email".into(), "ada@example.com".into()), ("next".into(), "/spaces".into())],
        form_error: Some("The email or password is incorrect.".into()),
        ..FormOutcome::default()
    };
    let context =
        PageContext { page: PageData::Login(LoginPage::default()), form: Some(form), ..PageContext::default() };
    let html = render(context);
    assert!(html.contains(r#"value="/spaces""#) && html.contains("The email or password is incorrect."), "{html}");
    assert!(!html.contains("Your session has expired"), "{html}");
}

#[test]
fn the_wizard_asks_for_the_provider_first_then_shows_its_form() {
    let html = render(with_viewer(PageData::Wizard(WizardPage::default())));
    assert!(html.contains("Which Bitbucket does this integration connect to?"), "{html}");
    let wizard = WizardPage {
        provider: "bitbucket_cloud".into(),
        callback_url: "https://bitgate.example/oauth/bitbucket/callback".into(),
        ..WizardPage::default()
    };
    let html = render(with_viewer(PageData::Wizard(wizard)));
    assert!(html.contains("https://bitgate.example/oauth/bitbucket/callback"), "{html}");
}

#[test]
fn flashes_and_the_stack_page_come_from_the_context() {
    let stack = StackPage {
        id: "42".into(),
        name: "network-prod".into(),
        space: "platform".into(),
        repository: "OPS/network".into(),
        branch: "main".into(),
        ..StackPage::default()
    };
    let context =
        PageContext { flashes: vec![Flash::success("Stack created.")], ..with_viewer(PageData::Stack(stack)) };
    let html = render(context);
    assert!(html.contains("network-prod") && html.contains("OPS/network"), "{html}");
    assert!(html.contains("Stack created."), "{html}");
}

#[test]
fn the_token_page_is_on_the_user_facing_url_once_one_is_an_address() {
    use crate::islands::integration_form::token_page;
    let page = |facing: &str, api: &str| token_page(facing, api);
    assert_eq!(page("", ""), None);
    assert_eq!(page("", "bitbucket.example.com"), None, "not yet an address");
    assert_eq!(page("", "https://"), None);
    assert_eq!(page("", "ftp://bitbucket.example.com"), None);
    assert_eq!(
        page("", "https://bitbucket.example.com/"),
        Some("https://bitbucket.example.com/plugins/servlet/access-tokens/manage".into()),
        "the API URL when the user-facing one is empty"
    );
    assert_eq!(
        page(" https://git.example.com/bitbucket ", "https://10.0.0.5:7990"),
        Some("https://git.example.com/bitbucket/plugins/servlet/access-tokens/manage".into()),
        "the user-facing URL, with its context path"
    );
}
