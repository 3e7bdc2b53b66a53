//! Moments as people read them: "2 minutes ago", with the exact time (to
//! the second, in UTC) in a tooltip and the machine-readable one in
//! `datetime`. Rendered on the server, so it needs no JavaScript; the
//! stored times (microseconds, RFC 3339) stay in the API.

use leptos::prelude::*;
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime, UtcOffset};

/// A moment given in RFC 3339 (as the API writes them); any other text is
/// shown as it is.
#[component]
pub fn When(#[prop(into)] at: String) -> impl IntoView {
    match OffsetDateTime::parse(&at, &Rfc3339) {
        Ok(moment) => {
            let said = relative(moment, now());
            view! { <time datetime=at title=exact(moment)>{said}</time> }.into_any()
        }
        Err(_) => view! { <span>{at}</span> }.into_any(),
    }
}

/// The exact time of an RFC 3339 moment, to the second: `2026-12-03 19:59:35 UTC`
/// (any other text as it is), for sentences that name a moment.
pub fn exact_text(at: &str) -> String {
    OffsetDateTime::parse(at, &Rfc3339).map(exact).unwrap_or_else(|_| at.to_owned())
}

/// The exact time of a moment, to the second: `2026-12-03 19:59:35 UTC`.
pub fn exact(moment: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    moment.to_offset(UtcOffset::UTC).format(&format).unwrap_or_default()
}

// Pages render on the server; the browser's bundle (islands) never shows one.
#[cfg(feature = "ssr")]
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(not(feature = "ssr"))]
fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// How long ago `at` was (or how far ahead it is), rounded as people say
/// it; past four weeks, its date.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let delta = now - at;
    let ahead = delta.is_negative();
    let seconds = delta.whole_seconds().unsigned_abs();
    let (count, unit) = match seconds {
        s if s < 45 => return if ahead { "in a few seconds" } else { "just now" }.to_owned(),
        s if s < 90 => (1, "minute"),
        s if s < 45 * MINUTE => ((s + MINUTE / 2) / MINUTE, "minute"),
        s if s < 90 * MINUTE => (1, "hour"),
        s if s < 22 * HOUR => ((s + HOUR / 2) / HOUR, "hour"),
        s if s < 36 * HOUR => (1, "day"),
        s if s < 26 * DAY => ((s + DAY / 2) / DAY, "day"),
        _ => {
            let format = format_description!("[year]-[month]-[day]");
            let date = at.to_offset(UtcOffset::UTC).format(&format).unwrap_or_default();
            return if ahead { format!("on {date}") } else { date };
        }
    };
    let span = match (count, unit) {
        (1, "hour") => "an hour".to_owned(),
        (1, unit) => format!("a {unit}"),
        (count, unit) => format!("{count} {unit}s"),
    };
    if ahead {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn moments_read_as_people_say_them() {
        let now = datetime!(2026-12-03 20:00:00 UTC);
        let ago = |seconds: i64| relative(now - time::Duration::seconds(seconds), now);
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(60), "a minute ago");
        assert_eq!(ago(150), "3 minutes ago");
        assert_eq!(ago(44 * 60), "44 minutes ago");
        assert_eq!(ago(60 * 60), "an hour ago");
        assert_eq!(ago(5 * 3600), "5 hours ago");
        assert_eq!(ago(30 * 3600), "a day ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(40 * 86400), "2026-10-24");
        assert_eq!(ago(-10), "in a few seconds");
        assert_eq!(ago(-2 * 86400), "in 2 days");
        assert_eq!(ago(-90 * 86400), "on 2027-03-03");
    }

    #[test]
    fn the_exact_time_is_to_the_second_in_utc() {
        assert_eq!(exact_text("2026-12-03T19:59:35.964555Z"), "2026-12-03 19:59:35 UTC");
        assert_eq!(exact_text("2026-12-03T21:59:35+02:00"), "2026-12-03 19:59:35 UTC");
        assert_eq!(exact_text("never"), "never", "not a moment: as it is");
    }
}
