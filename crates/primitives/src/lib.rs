//! Basic types of the Logos chain.
//!
//! Everything that goes on the wire or on disk is encoded with one bounded codec,
//! [`commonware_codec`], re-exported here as [`codec`]. Every decoder takes a configuration
//! that bounds variable lengths, so a peer cannot make a node allocate without limit.
//!
//! - [`Hash`]: the one hash function of the chain, SHA-256 ([`hash`]).
//! - [`Address`]: a 20-byte account address derived from an ed25519 public key.
//! - [`Amount`]: a token amount in the smallest unit (no decimals anywhere in the state machine).
//! - [`ChainId`]: the hash of a network's genesis; signed transactions commit to it.
//! - [`Height`], [`Epoch`], [`View`]: the consensus newtypes of `commonware-consensus`.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub use commonware_codec as codec;
pub use commonware_consensus::types::{Epoch, Height, View};
pub use commonware_cryptography::ed25519::{PrivateKey, PublicKey, Signature};
pub use commonware_cryptography::sha256::Digest as Hash;

/// Gives a type its text form everywhere: `Debug` as its `Display` text, serialization as that
/// text, deserialization with its `FromStr` (the `0x` hex of addresses and chain ids).
macro_rules! text_form {
    ($name:ty) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod address;
mod amount;
mod chain_id;
mod node_key;

pub use address::Address;
pub use amount::Amount;
pub use chain_id::ChainId;
pub use node_key::{KeySignature, NodeKey};

use commonware_cryptography::{Hasher, Sha256};

/// Errors from parsing the text forms of primitives.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The text is not hex.
    #[error("invalid hex: {0}")]
    Hex(String),
    /// The decoded bytes have the wrong length.
    #[error("expected {expected} bytes, got {actual}")]
    Length {
        /// Expected number of bytes.
        expected: usize,
        /// Number of bytes given.
        actual: usize,
    },
    /// The text is not a decimal amount.
    #[error("invalid amount: {0}")]
    Amount(String),
    /// The bytes do not decode to a valid key.
    #[error("invalid key: {0}")]
    Key(String),
}

/// SHA-256 over the concatenation of `parts` (the chain's one hash function).
pub fn hash(parts: &[&[u8]]) -> Hash {
    Sha256::hash(parts)
}

/// Decodes a hex string with at most one `0x` prefix (`0x0x…` is refused). Errors:
/// [`ParseError::Hex`] for anything but an even number of hex digits.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, ParseError> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(text).map_err(|error| ParseError::Hex(error.to_string()))
}

/// Decodes a hex string (an optional `0x` prefix is accepted) into exactly `N` bytes.
pub fn decode_hex_array<const N: usize>(text: &str) -> Result<[u8; N], ParseError> {
    decode_hex(text)?
        .try_into()
        .map_err(|bytes: Vec<u8>| ParseError::Length {
            expected: N,
            actual: bytes.len(),
        })
}

/// Parses a hex-encoded [`Hash`] (optional `0x` prefix).
pub fn parse_hash(text: &str) -> Result<Hash, ParseError> {
    Ok(Hash::from(decode_hex_array::<32>(text)?))
}

/// Formats a [`Hash`] as `0x`-prefixed lowercase hex.
pub fn format_hash(hash: &Hash) -> String {
    format!("0x{}", hex::encode(hash.as_ref()))
}

/// Parses a hex-encoded ed25519 public key (optional `0x` prefix).
pub fn parse_public_key(text: &str) -> Result<PublicKey, ParseError> {
    use codec::DecodeExt;
    let bytes = decode_hex_array::<32>(text)?;
    PublicKey::decode(codec::Copying(bytes.as_slice()))
        .map_err(|error| ParseError::Key(error.to_string()))
}

/// Formats an ed25519 public key as `0x`-prefixed lowercase hex.
pub fn format_public_key(key: &PublicKey) -> String {
    format!("0x{}", hex::encode(key.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_through_hex() {
        let digest = hash(&[b"logos"]);
        assert_eq!(parse_hash(&format_hash(&digest)).unwrap(), digest);
    }

    #[test]
    fn hex_of_wrong_length_is_rejected() {
        assert_eq!(
            decode_hex_array::<4>("0x0102"),
            Err(ParseError::Length {
                expected: 4,
                actual: 2
            })
        );
        assert!(matches!(
            decode_hex_array::<1>("zz"),
            Err(ParseError::Hex(_))
        ));
    }

    #[test]
    fn hex_takes_one_prefix_at_most() {
        assert_eq!(decode_hex("0x0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_hex("0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_hex("").unwrap(), Vec::<u8>::new());
        for refused in ["0x0x0102", "0x012", "0X0102", " 0x01"] {
            assert!(
                matches!(decode_hex(refused), Err(ParseError::Hex(_))),
                "{refused} taken"
            );
        }
    }
}
