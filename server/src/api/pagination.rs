//! Cursor pagination: `?limit=` (default 50, at most 500) and `?cursor=`,
//! answered as `{"items": [...], "next_cursor": "..." | null}`. A cursor is
//! the position after the last item (its time and id), opaque to clients; a
//! forged or damaged one is a clear 400.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::AppError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// `?limit=&cursor=`. Read as text, so that a bad value is our clear 400
/// rather than the extractor's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to answer, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A position in a list ordered by (time, id) descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// Unix time in nanoseconds.
    t: i128,
    i: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let data = CursorData { t: self.at.unix_timestamp_nanos(), i: self.id };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Result<Self, AppError> {
        let invalid = || AppError::BadRequest("The cursor is not one Bitgate gave out; start again without it.".into());
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(data.t).map_err(|_| invalid())?;
        Ok(Self { at, id: data.i })
    }
}

/// A position in a list someone else pages by offset (Bitbucket's `start`),
/// kept as opaque as our own cursors.
pub fn encode_offset(start: u64) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&serde_json::json!({"start": start})).unwrap_or_default())
}

pub fn decode_offset(raw: &str) -> Result<u64, AppError> {
    let invalid = || AppError::BadRequest("The cursor is not one Bitgate gave out; start again without it.".into());
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    value["start"].as_u64().ok_or_else(invalid)
}

/// A page request, checked.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, AppError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(AppError::BadRequest(format!("limit must be a whole number from 1 to {MAX_LIMIT}."))),
            },
        };
        let after = self.cursor.as_deref().filter(|c| !c.is_empty()).map(Cursor::decode).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// Where a console page's list starts: after the position of the `cursor`
/// in its address, or at the top when there is none (a forged one is a 400).
pub fn page_start(cursor: &str) -> Result<Option<Cursor>, AppError> {
    PageQuery { limit: None, cursor: Some(cursor.to_owned()) }.parse().map(|request| request.after)
}

/// Cuts a list fetched with `limit + 1` rows into a page and its next cursor.
pub fn page<T>(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> Cursor) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|last| position(last).encode());
        (rows, next)
    } else {
        (rows, None)
    }
}

/// [`page`], with each row turned into what the API shows of it.
pub fn page_of<R, T>(rows: Vec<R>, limit: i64, position: impl Fn(&R) -> Cursor, show: impl Fn(&R) -> T) -> Page<T> {
    let (rows, next_cursor) = page(rows, limit, position);
    Page { items: rows.iter().map(show).collect(), next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let cursor = Cursor { at: OffsetDateTime::now_utc(), id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for forged in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode(b"{\"t\":1}")] {
            assert!(matches!(Cursor::decode(forged), Err(AppError::BadRequest(_))), "{forged:?}");
        }
    }

    #[test]
    fn offsets_round_trip_and_forgeries_are_refused() {
        assert_eq!(decode_offset(&encode_offset(75)).unwrap(), 75);
        for forged in [
            "",
            "x",
            &URL_SAFE_NO_PAD.encode(b"{\"start\":-1}"),
            &Cursor { at: OffsetDateTime::now_utc(), id: Uuid::nil() }.encode(),
        ] {
            assert!(decode_offset(forged).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        let query = |limit: &str| PageQuery { limit: Some(limit.into()), cursor: None }.parse();
        assert_eq!(query("10").unwrap().limit, 10);
        assert_eq!(PageQuery { limit: None, cursor: None }.parse().unwrap().limit, DEFAULT_LIMIT);
        for bad in ["0", "501", "-1", "ten"] {
            assert!(query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_stop_where_the_rows_stop() {
        let now = OffsetDateTime::now_utc();
        let rows: Vec<Cursor> = (0..3).map(|_| Cursor { at: now, id: Uuid::new_v4() }).collect();
        let (items, next) = page(rows.clone(), 2, |c| *c);
        assert_eq!(items.len(), 2);
        assert_eq!(Cursor::decode(&next.unwrap()).unwrap(), rows[1]);
        let (items, next) = page(rows, 3, |c| *c);
        assert_eq!((items.len(), next), (3, None));
    }
}
