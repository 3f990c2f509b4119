//! Raw ed25519 keys and signatures as on-chain records store them: fixed bytes with a hex text
//! form, decoded into commonware's checked types only where they are used (a record that
//! holds an invalid point still decodes; [`NodeKey::public_key`] says so).

use crate::{decode_hex_array, ParseError, PublicKey, Signature};
use bytes::BufMut;
use commonware_codec::{Buf, DecodeExt, Error as CodecError, FixedSize, Read, Write};
use commonware_cryptography::Verifier;
use std::{fmt, str::FromStr};

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $length:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $length]);

        impl $name {
            /// Length in bytes.
            pub const LENGTH: usize = $length;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self(decode_hex_array::<{ $length }>(text)?))
            }
        }

        text_form!($name);

        impl Write for $name {
            fn write(&self, buf: &mut impl BufMut) {
                buf.put_slice(&self.0);
            }
        }

        impl Read for $name {
            type Cfg = ();

            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
                if buf.remaining() < Self::LENGTH {
                    return Err(CodecError::EndOfBuffer);
                }
                let mut bytes = [0u8; $length];
                buf.copy_to_slice(&mut bytes);
                Ok(Self(bytes))
            }
        }

        impl FixedSize for $name {
            const SIZE: usize = $length;
        }
    };
}

fixed_bytes!(
    /// A node's p2p identity: an ed25519 public key, 32 bytes (`0x` + 64 hex digits).
    NodeKey,
    32
);

fixed_bytes!(
    /// An ed25519 signature, 64 bytes (`0x` + 128 hex digits).
    KeySignature,
    64
);

impl NodeKey {
    /// The raw bytes of `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let mut bytes = [0u8; Self::LENGTH];
        bytes.copy_from_slice(key.as_ref());
        Self(bytes)
    }

    /// The key as a checked ed25519 point; [`ParseError::Key`] if it is not one, is not in
    /// canonical encoding, or is of small order: commonware verifies ZIP-215 style (cofactored), under which a
    /// small-order key has signatures that verify for every message, so holding such a "key"
    /// proves nothing.
    pub fn public_key(&self) -> Result<PublicKey, ParseError> {
        let point = curve25519_dalek::edwards::CompressedEdwardsY(self.0)
            .decompress()
            .ok_or_else(|| ParseError::Key("not a curve point".into()))?;
        if point.is_small_order() {
            return Err(ParseError::Key("a small-order point".into()));
        }
        // ZIP-215 decoding also takes non-canonical encodings: one point, one key.
        if point.compress().to_bytes() != self.0 {
            return Err(ParseError::Key("a non-canonical encoding".into()));
        }
        PublicKey::decode(commonware_codec::Copying(self.0.as_slice()))
            .map_err(|error| ParseError::Key(error.to_string()))
    }

    /// Whether `signature` is this key's over `message` in `namespace` (false for a key or
    /// signature that does not decode).
    pub fn verifies(&self, namespace: &[u8], message: &[u8], signature: &KeySignature) -> bool {
        let Ok(key) = self.public_key() else {
            return false;
        };
        let Ok(signature) = Signature::decode(commonware_codec::Copying(signature.0.as_slice()))
        else {
            return false;
        };
        key.verify(namespace, message, &signature)
    }
}

impl KeySignature {
    /// The raw bytes of `signature`.
    pub fn from_signature(signature: &Signature) -> Self {
        let mut bytes = [0u8; Self::LENGTH];
        bytes.copy_from_slice(signature.as_ref());
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::Encode;
    use commonware_cryptography::{ed25519::PrivateKey, Signer};

    #[test]
    fn keys_round_trip_and_signatures_verify_only_for_their_message() {
        let signer = PrivateKey::from_seed(7);
        let key = NodeKey::from_public_key(&signer.public_key());
        assert_eq!(key.public_key().unwrap(), signer.public_key());
        assert_eq!(key.to_string().parse::<NodeKey>().unwrap(), key);
        assert_eq!(NodeKey::decode(key.encode()).unwrap(), key);
        let signature = KeySignature::from_signature(&signer.sign(b"ns", b"message"));
        assert!(key.verifies(b"ns", b"message", &signature));
        assert!(!key.verifies(b"ns", b"other", &signature));
        assert!(!key.verifies(b"other-ns", b"message", &signature));
        let mut flipped = signature;
        flipped.0[0] ^= 1;
        assert!(!key.verifies(b"ns", b"message", &flipped));
        // A non-canonical encoding (y ≥ p), and a short text form.
        let invalid = NodeKey([0xff; 32]);
        assert!(invalid.public_key().is_err());
        assert!(!invalid.verifies(b"ns", b"message", &signature));
        assert!("0x1234".parse::<NodeKey>().is_err());
        // The identity (y = 1) and the other small-order points are refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(NodeKey(identity).public_key().is_err());
        let torsion = curve25519_dalek::constants::EIGHT_TORSION;
        for point in torsion {
            let key = NodeKey(point.compress().to_bytes());
            assert!(key.public_key().is_err(), "{key}");
        }
    }
}
