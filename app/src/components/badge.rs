//! States shown as badges: a word in a colour, the same four tones on every
//! page. The word carries the meaning; the colour only repeats it (a badge
//! is never colour alone).

use leptos::prelude::*;

/// How a state reads at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Working, done well.
    Good,
    /// Gone wrong: someone should look.
    Bad,
    /// On its way, or waiting for someone.
    Waiting,
    /// Neither: for information.
    Neutral,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "badge good",
            Tone::Bad => "badge bad",
            Tone::Waiting => "badge waiting",
            Tone::Neutral => "badge neutral",
        }
    }
}

#[component]
pub fn Badge(tone: Tone, #[prop(into)] word: String) -> impl IntoView {
    view! { <span class=tone.class()>{word}</span> }
}

/// An integration's health (`connected`, `pending_authorization`, `error`).
pub fn health(state: &str) -> impl IntoView {
    let (tone, word) = match state {
        "connected" => (Tone::Good, "connected"),
        "pending_authorization" => (Tone::Waiting, "pending approval"),
        "error" => (Tone::Bad, "error"),
        other => (Tone::Neutral, other),
    };
    view! { <Badge tone word=word.to_owned() /> }
}

/// What became of a delivery.
pub fn delivery_outcome(outcome: &str) -> impl IntoView {
    let tone = match outcome {
        "accepted" => Tone::Good,
        "rejected" => Tone::Bad,
        _ => Tone::Neutral,
    };
    view! { <Badge tone word=outcome.to_owned() /> }
}

/// The verdict on a delivery's signature.
pub fn signature(verdict: &str) -> impl IntoView {
    let (tone, word) = match verdict {
        "valid" => (Tone::Good, "valid"),
        "valid_previous" => (Tone::Good, "valid (previous secret)"),
        "mismatch" => (Tone::Bad, "mismatch"),
        "missing" => (Tone::Bad, "missing"),
        "unsigned_ping" => (Tone::Neutral, "unsigned ping"),
        "unchecked" => (Tone::Neutral, "not checked"),
        other => (Tone::Neutral, other),
    };
    view! { <Badge tone word=word.to_owned() /> }
}
