//! The frame of every page: navigation, page header, flash messages.

use leptos::prelude::*;
use leptos_meta::Title;

use super::checklist::Checklist;
use crate::context::{page_context, Flash, FlashKind};

/// A page of the console, for a logged-in user.
#[component]
pub fn Page(
    /// The page's heading (and the document title).
    #[prop(into)]
    title: String,
    /// A line under the heading.
    #[prop(optional, into)]
    lede: Option<String>,
    children: Children,
) -> impl IntoView {
    let context = page_context();
    let viewer = context.viewer.clone();
    let is_account_admin = viewer.as_ref().is_some_and(|v| v.is_account_admin);
    // (Rendered twice: in the bar and in the menu.)
    let account = move || {
        viewer.clone().map(|viewer| {
            view! {
            <span class="account-name" title=viewer.email.clone()>
                {viewer.name.clone()}
            </span>
            <form method="post" action="/logout" class="inline">
                <input type="hidden" name="csrf_token" value=viewer.csrf_token.clone() />
                <button type="submit" class="button link">
                    "Log out"
                </button>
            </form>
            }
        })
    };
    view! {
        <Title text=format!("{title} · Bitgate") />
        // Wide windows show the navigation in the bar; narrow ones (a
        // phone) fold it into a menu that opens without JavaScript. Only
        // one of the two is displayed (CSS), so a screen reader meets one.
        <header class="topbar">
            <a class="brand" href="/">
                <BrandMark />
                "Bitgate"
            </a>
            <nav class="topnav" aria-label="Main">
                <NavLinks is_account_admin />
            </nav>
            <div class="account">{account()}</div>
            <details class="menu">
                <summary>"Menu"</summary>
                <div class="menu-panel">
                    <nav aria-label="Main">
                        <NavLinks is_account_admin />
                    </nav>
                    <div class="account">{account()}</div>
                </div>
            </details>
        </header>
        <main class="content">
            <header class="page-header">
                <h1>{title}</h1>
                {lede.map(|lede| view! { <p class="lede">{lede}</p> })}
            </header>
            <Flashes flashes=context.flashes.clone() />
            {children()}
        </main>
    }
}

/// A page outside the console (login, first-time setup, errors): one card
/// in the middle.
#[component]
pub fn CardPage(#[prop(into)] title: String, children: Children) -> impl IntoView {
    let flashes = page_context().flashes.clone();
    view! {
        <Title text=format!("{title} · Bitgate") />
        <main class="card-page">
            <div class="card">
                <a class="brand centered" href="/">
                    <BrandMark />
                    "Bitgate"
                </a>
                <h1>{title}</h1>
                <Flashes flashes />
                {children()}
            </div>
        </main>
    }
}

#[component]
fn Flashes(flashes: Vec<Flash>) -> impl IntoView {
    flashes
        .into_iter()
        .map(|flash| {
            let (class, role) = match flash.kind {
                FlashKind::Success => ("flash success", "status"),
                FlashKind::Info => ("flash info", "status"),
                FlashKind::Error => ("flash error", "alert"),
            };
            // Type-erased: the page's frame is one type, which must stay shallow.
            let checks = (!flash.checks.is_empty()).then(|| view! { <Checklist lines=flash.checks /> }.into_any());
            view! {
                <div class=class role=role>
                    <p>{flash.message}</p>
                    {checks}
                </div>
            }
            .into_any()
        })
        .collect_view()
}

/// The console's sections, for the bar and for the menu.
#[component]
fn NavLinks(is_account_admin: bool) -> impl IntoView {
    view! {
        <a href="/">"Integrations"</a>
        <a href="/stacks">"Stacks"</a>
        <a href="/spaces">"Spaces"</a>
        <a href="/tokens">"API tokens"</a>
        {is_account_admin
            .then(|| {
                view! {
                    <a href="/users">"Users"</a>
                    <a href="/audit">"Audit log"</a>
                }
            })}
        <a href="/api/reference">"API"</a>
    }
}

/// A table that scrolls sideways on its own when it is wider than the
/// window (a phone) instead of widening the page. The region is focusable
/// and named, so that a keyboard can scroll it too.
#[component]
pub fn TableScroll(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div class="table-scroll" role="region" aria-label=label tabindex="0">
            {children()}
        </div>
    }
}

#[component]
fn BrandMark() -> impl IntoView {
    view! {
        <svg class="brand-mark" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M4 4h9a4 4 0 0 1 0 8H4zM4 12h10a4 4 0 0 1 0 8H4z" />
        </svg>
    }
}

/// What a list shows when it has nothing in it: what the thing is and how to
/// get the first one.
#[component]
pub fn EmptyState(#[prop(into)] title: String, children: Children) -> impl IntoView {
    view! {
        <section class="empty-state">
            <h2>{title}</h2>
            {children()}
        </section>
    }
}
