//! The one codec ([`commonware_codec`]) as the runtime types use it, and its bounded containers.
//!
//! Every type here decodes with `Cfg = ()`: its variable lengths are bounded by its own type
//! ([`BoundedVec`], [`BoundedString`]), so a decoder never takes a limit from its caller and a
//! value that breaks its bound cannot be built. Every type also has a `MaxEncodeSize`, which
//! storage items check against [`crate::storage::STORAGE_VALUE_MAX_BYTES`] at compile time.

pub use bytes::BufMut;
pub use commonware_codec::{
    Buf, Decode, Encode, EncodeSize, Error, IsUnit, MaxEncodeSize, RangeCfg, Read, ReadExt, Write,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, ops::Deref};

/// Bytes the codec's length prefix (a varint of the length) takes for `length`.
pub const fn varint_size(length: usize) -> usize {
    let mut size: usize = 1;
    let mut rest = length >> 7;
    while rest > 0 {
        size = size.saturating_add(1);
        rest >>= 7;
    }
    size
}

/// Decodes `bytes` as a whole `T` (trailing bytes are an error).
pub fn decode<T: Read<Cfg: IsUnit>>(bytes: &[u8]) -> Result<T, Error> {
    T::decode_cfg(commonware_codec::Copying(bytes), &T::Cfg::default())
}

/// Reads one `T` whose configuration is unit-like (the derives read every field with it).
pub fn read_unit<T: Read<Cfg: IsUnit>>(buf: &mut impl Buf) -> Result<T, Error> {
    T::read_cfg(buf, &T::Cfg::default())
}

/// The wire bytes of any codec value.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    value.encode().to_vec()
}

/// A value over its type's bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{length} exceeds the bound of {max}")]
pub struct BoundError {
    /// The offered length (items or bytes).
    pub length: usize,
    /// The bound.
    pub max: usize,
}

/// A list of at most `MAX` items (FRAME's `BoundedVec`). Wire: the codec's `Vec` (varint
/// length, then the items); a longer list does not decode. JSON: an array.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// The bound, items.
    pub const MAX: usize = MAX;

    /// An empty list.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// The first [`Self::MAX`] of `items` (all of them when they fit).
    pub fn truncated(mut items: Vec<T>) -> Self {
        items.truncate(MAX);
        Self(items)
    }

    /// Appends `item`, unless the list is full.
    pub fn try_push(&mut self, item: T) -> Result<(), BoundError> {
        self.check_room()?;
        self.0.push(item);
        Ok(())
    }

    /// Inserts `item` at `position`, unless the list is full.
    pub fn try_insert(&mut self, position: usize, item: T) -> Result<(), BoundError> {
        self.check_room()?;
        self.0.insert(position.min(self.0.len()), item);
        Ok(())
    }

    fn check_room(&self) -> Result<(), BoundError> {
        if self.0.len() >= MAX {
            return Err(BoundError {
                length: self.0.len().saturating_add(1),
                max: MAX,
            });
        }
        Ok(())
    }

    /// Removes and returns the item at `position`, if there is one.
    pub fn remove(&mut self, position: usize) -> Option<T> {
        (position < self.0.len()).then(|| self.0.remove(position))
    }

    /// Keeps the items for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.0.retain(keep);
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// True if no more items fit.
    pub fn is_full(&self) -> bool {
        self.0.len() >= MAX
    }

    /// The items.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T: Ord, const MAX: usize> BoundedVec<T, MAX> {
    /// Inserts `item` keeping an ascending list ascending; `Ok(false)` if it is already there.
    pub fn insert_sorted(&mut self, item: T) -> Result<bool, BoundError> {
        match self.0.binary_search(&item) {
            Ok(_) => Ok(false),
            Err(position) => self.try_insert(position, item).map(|()| true),
        }
    }

    /// Removes `item` from an ascending list; false if it was not there.
    pub fn remove_sorted(&mut self, item: &T) -> bool {
        match self.0.binary_search(item) {
            Ok(position) => {
                self.0.remove(position);
                true
            }
            Err(_) => false,
        }
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const MAX: usize> Deref for BoundedVec<T, MAX> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const MAX: usize> std::ops::DerefMut for BoundedVec<T, MAX> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T, const MAX: usize> TryFrom<Vec<T>> for BoundedVec<T, MAX> {
    type Error = BoundError;

    fn try_from(items: Vec<T>) -> Result<Self, BoundError> {
        if items.len() > MAX {
            return Err(BoundError {
                length: items.len(),
                max: MAX,
            });
        }
        Ok(Self(items))
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T, const MAX: usize> IntoIterator for BoundedVec<T, MAX> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(deserializer)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

impl<T: Write, const MAX: usize> Write for BoundedVec<T, MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl<T: EncodeSize, const MAX: usize> EncodeSize for BoundedVec<T, MAX> {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}

impl<T: Read<Cfg: IsUnit>, const MAX: usize> Read for BoundedVec<T, MAX> {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Vec::<T>::read_cfg(buf, &(RangeCfg::new(0..=MAX), T::Cfg::default())).map(Self)
    }
}

impl<T: MaxEncodeSize, const MAX: usize> MaxEncodeSize for BoundedVec<T, MAX> {
    const MAX_ENCODE_SIZE: usize = varint_size(MAX) + MAX * T::MAX_ENCODE_SIZE;
}

/// UTF-8 text of at most `MAX` bytes. Wire: varint length, then the bytes; longer text or
/// invalid UTF-8 does not decode. JSON: a string.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedString<const MAX: usize>(String);

impl<const MAX: usize> BoundedString<MAX> {
    /// The bound, bytes.
    pub const MAX_BYTES: usize = MAX;

    /// Empty text.
    pub const fn new() -> Self {
        Self(String::new())
    }

    /// `text` cut to at most `MAX` bytes on a character boundary.
    pub fn truncated(text: &str) -> Self {
        let mut end = text.len().min(MAX);
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        Self(text[..end].to_string())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> Deref for BoundedString<MAX> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for BoundedString<MAX> {
    type Error = BoundError;

    fn try_from(text: String) -> Result<Self, BoundError> {
        if text.len() > MAX {
            return Err(BoundError {
                length: text.len(),
                max: MAX,
            });
        }
        Ok(Self(text))
    }
}

impl<const MAX: usize> TryFrom<&str> for BoundedString<MAX> {
    type Error = BoundError;

    fn try_from(text: &str) -> Result<Self, BoundError> {
        text.to_string().try_into()
    }
}

impl<const MAX: usize> std::str::FromStr for BoundedString<MAX> {
    type Err = BoundError;

    fn from_str(text: &str) -> Result<Self, BoundError> {
        text.try_into()
    }
}

impl<const MAX: usize> PartialEq<str> for BoundedString<MAX> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl<const MAX: usize> PartialEq<&str> for BoundedString<MAX> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> Serialize for BoundedString<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedString<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

impl<const MAX: usize> Write for BoundedString<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.as_bytes().write(buf);
    }
}

impl<const MAX: usize> EncodeSize for BoundedString<MAX> {
    fn encode_size(&self) -> usize {
        self.0.as_bytes().encode_size()
    }
}

impl<const MAX: usize> Read for BoundedString<MAX> {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::new(0..=MAX), ()))?;
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|_| Error::Invalid("BoundedString", "not UTF-8"))
    }
}

impl<const MAX: usize> MaxEncodeSize for BoundedString<MAX> {
    const MAX_ENCODE_SIZE: usize = varint_size(MAX) + MAX;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_sizes_match_the_codec() {
        for length in [0usize, 1, 127, 128, 16_383, 16_384, 65_536, 1 << 21] {
            assert_eq!(varint_size(length), length.encode_size(), "{length}");
        }
    }

    #[test]
    fn bounded_vec_refuses_more_than_its_bound_on_every_path() {
        let mut list = BoundedVec::<u16, 2>::new();
        list.try_push(1).unwrap();
        list.try_push(2).unwrap();
        assert_eq!(list.try_push(3), Err(BoundError { length: 3, max: 2 }));
        assert!(BoundedVec::<u16, 2>::try_from(vec![1, 2, 3]).is_err());
        let oversize = encode(&vec![1u16, 2, 3]);
        assert!(decode::<BoundedVec<u16, 2>>(&oversize).is_err());
        assert_eq!(decode::<BoundedVec<u16, 2>>(&encode(&list)).unwrap(), list);
        assert!(serde_json::from_str::<BoundedVec<u16, 2>>("[1,2,3]").is_err());
        assert_eq!(
            <BoundedVec<u16, 2> as MaxEncodeSize>::MAX_ENCODE_SIZE,
            1 + 2 * 2
        );
    }

    #[test]
    fn bounded_string_refuses_long_text_and_bad_utf8() {
        assert!(BoundedString::<3>::try_from("abcd").is_err());
        assert!(decode::<BoundedString<3>>(&encode(&b"abcd".to_vec())).is_err());
        assert!(decode::<BoundedString<3>>(&encode(&vec![0xffu8, 0xfe])).is_err());
        let text = BoundedString::<3>::try_from("abc").unwrap();
        assert_eq!(decode::<BoundedString<3>>(&encode(&text)).unwrap(), text);
        assert_eq!(BoundedString::<4>::truncated("aéé").as_str(), "aé");
        assert!(serde_json::from_str::<BoundedString<3>>("\"abcd\"").is_err());
    }
}
