//! A connection test's checklist: each check Bitbucket was asked, with a
//! badge that says whether it passed and what Bitgate found. The same list
//! answers a failed test (on the form, nothing saved) and a passed one (in
//! the message on the next page), so an admin sees what was proven either way.

use leptos::prelude::*;

use super::badge::{Badge, Tone};

/// One line: the check's name, whether it passed, and what was found.
pub type CheckLine = (String, bool, String);

#[component]
pub fn Checklist(lines: Vec<CheckLine>) -> impl IntoView {
    view! {
        <ul class="checklist">
            {lines
                .into_iter()
                .map(|(name, ok, message)| {
                    let (tone, word, class) =
                        if ok { (Tone::Good, "passed", "check ok") } else { (Tone::Bad, "failed", "check failed") };
                    view! {
                        <li class=class>
                            <Badge tone word />
                            <span><strong>{name}</strong> " " {message}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}
