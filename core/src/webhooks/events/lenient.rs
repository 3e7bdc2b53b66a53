//! Reading only the few fields an event needs out of a body of several
//! kilobytes, as forgivingly as indexing a parsed `serde_json::Value` does:
//! a field that is absent, `null` or of another JSON type than expected
//! reads as absent instead of failing the body, and everything not named
//! is skipped unbuilt (its syntax is still checked). Building a `Value`
//! allocated a map entry for every field of the body; these readings
//! allocate only the strings kept.

use std::{fmt, marker::PhantomData};

use serde::{
    de::{
        value::{MapAccessDeserializer, SeqAccessDeserializer},
        IgnoredAny, MapAccess, SeqAccess, Visitor,
    },
    Deserialize, Deserializer,
};

/// A scalar read as text: a non-empty string, or a number as JSON writes
/// it (Data Center's ids are numbers). Anything else reads as absent.
#[derive(Debug, Default)]
pub struct Text(pub Option<String>);

/// A whole number that fits `u64`; anything else (a string, a fraction,
/// a negative number) reads as absent.
#[derive(Debug, Default)]
pub struct Count(pub Option<u64>);

/// A JSON object read as `T`; anything else reads as absent.
#[derive(Debug)]
pub struct Object<T>(pub Option<T>);

/// A JSON array whose items are each read as `T`; anything else reads as absent.
#[derive(Debug)]
pub struct Array<T>(pub Option<Vec<T>>);

impl Text {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<T> Object<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

// Written out: a derive would ask `T: Default`, which readings need not be.
impl<T> Default for Object<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> Default for Array<T> {
    fn default() -> Self {
        Self(None)
    }
}

/// What a reading takes of each JSON type; every type it does not take
/// reads as its default, absent, after being skipped whole.
trait Reading<'de>: Default {
    fn string(_: &str) -> Self {
        Self::default()
    }
    fn unsigned(_: u64) -> Self {
        Self::default()
    }
    fn signed(_: i64) -> Self {
        Self::default()
    }
    fn float(_: f64) -> Self {
        Self::default()
    }
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Self::default())
    }
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Self::default())
    }
}

impl Reading<'_> for Text {
    fn string(text: &str) -> Self {
        Self(Some(text).filter(|t| !t.is_empty()).map(str::to_owned))
    }
    fn unsigned(number: u64) -> Self {
        Self(Some(number.to_string()))
    }
    fn signed(number: i64) -> Self {
        Self(Some(number.to_string()))
    }
    fn float(number: f64) -> Self {
        // As serde_json writes it (`1.0`, not Rust's `1`).
        Self(serde_json::Number::from_f64(number).map(|n| n.to_string()))
    }
}

impl Reading<'_> for Count {
    fn unsigned(number: u64) -> Self {
        Self(Some(number))
    }
    fn signed(number: i64) -> Self {
        Self(u64::try_from(number).ok())
    }
}

impl<'de, T: Deserialize<'de>> Reading<'de> for Object<T> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Self(Some(t)))
    }
}

impl<'de, T: Deserialize<'de>> Reading<'de> for Array<T> {
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(|items| Self(Some(items)))
    }
}

struct Reader<R>(PhantomData<R>);

impl<'de, R: Reading<'de>> Visitor<'de> for Reader<R> {
    type Value = R;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<R, E> {
        Ok(R::default())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<R, E> {
        Ok(R::default())
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<R, E> {
        Ok(R::string(text))
    }
    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<R, E> {
        Ok(R::unsigned(number))
    }
    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<R, E> {
        Ok(R::signed(number))
    }
    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<R, E> {
        Ok(R::float(number))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
        R::map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
        R::seq(seq)
    }
}

/// Every reading deserializes alike: whatever JSON is there, to its visitor.
macro_rules! deserialize_any {
    ($($reading:ty $(where $param:ident)?),*) => {$(
        impl<'de $(, $param: Deserialize<'de>)?> Deserialize<'de> for $reading {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(Reader::<Self>(PhantomData))
            }
        }
    )*};
}
deserialize_any!(Text, Count, Object<T> where T, Array<T> where T);
