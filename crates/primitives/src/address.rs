//! Account addresses.

use crate::{decode_hex_array, hash, ParseError, PublicKey};
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Error as CodecError, FixedSize, Read, Write};
use std::{fmt, str::FromStr};

/// Domain separator for deriving an address from a public key.
const ADDRESS_DOMAIN: &[u8] = b"logos-address-v1";

/// A 20-byte account address: the first 20 bytes of
/// `SHA-256("logos-address-v1" || ed25519 public key)`.
///
/// Text form: `0x` followed by 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; Address::LENGTH]);

impl Address {
    /// Length of an address in bytes.
    pub const LENGTH: usize = 20;

    /// Derives the address controlled by `public_key`.
    pub fn from_public_key(public_key: &PublicKey) -> Self {
        Self::from_key_bytes(public_key.as_ref())
    }

    /// The address of the ed25519 public key encoded as `bytes` (32), without decompressing
    /// it (the same as [`Self::from_public_key`] for a valid key).
    pub fn from_key_bytes(bytes: &[u8]) -> Self {
        let digest = hash(&[ADDRESS_DOMAIN, bytes]);
        let mut bytes = [0u8; Self::LENGTH];
        bytes.copy_from_slice(&digest.as_ref()[..Self::LENGTH]);
        Self(bytes)
    }

    /// The raw bytes of the address.
    pub fn as_bytes(&self) -> &[u8; Self::LENGTH] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl FromStr for Address {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(decode_hex_array::<{ Address::LENGTH }>(text)?))
    }
}

text_form!(Address);

impl Write for Address {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

impl Read for Address {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        if buf.remaining() < Self::LENGTH {
            return Err(CodecError::EndOfBuffer);
        }
        let mut bytes = [0u8; Self::LENGTH];
        buf.copy_to_slice(&mut bytes);
        Ok(Self(bytes))
    }
}

impl FixedSize for Address {
    const SIZE: usize = Self::LENGTH;
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};
    use commonware_cryptography::{ed25519::PrivateKey, Signer};

    #[test]
    fn address_is_derived_deterministically_and_round_trips() {
        let key = PrivateKey::from_seed(7).public_key();
        let address = Address::from_public_key(&key);
        assert_eq!(address, Address::from_public_key(&key));
        assert_ne!(
            address,
            Address::from_public_key(&PrivateKey::from_seed(8).public_key())
        );
        assert_eq!(address.to_string().parse::<Address>().unwrap(), address);
        assert_eq!(Address::decode(address.encode()).unwrap(), address);
    }

    #[test]
    fn short_address_is_rejected() {
        assert!("0x0102".parse::<Address>().is_err());
        assert!(Address::decode(commonware_codec::Copying(&[1u8, 2, 3][..])).is_err());
    }
}
