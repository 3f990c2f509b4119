//! Chain identifiers.

use crate::{format_hash, parse_hash, Hash, ParseError};
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Error as CodecError, FixedSize, Read, ReadExt, Write};
use std::{fmt, str::FromStr};

/// Identifies one Logos network: the SHA-256 of its canonical genesis encoding.
///
/// Every signed transaction commits to a chain id, so a transaction of one network is invalid on
/// any other, including a spin-off whose genesis was derived from this network's state (its
/// genesis differs, so its id differs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub Hash);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_hash(&self.0))
    }
}

impl FromStr for ChainId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(parse_hash(text)?))
    }
}

text_form!(ChainId);

impl ChainId {
    /// Namespace of this network's consensus messages (simplex votes and certificates):
    /// `logos-consensus-v1-` followed by the chain id's 32 bytes, so that a vote of one
    /// network never verifies on another.
    pub fn consensus_namespace(&self) -> Vec<u8> {
        let mut namespace = b"logos-consensus-v1-".to_vec();
        namespace.extend_from_slice(self.0.as_ref());
        namespace
    }
}

impl Write for ChainId {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl Read for ChainId {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(Hash::read(buf)?))
    }
}

impl FixedSize for ChainId {
    const SIZE: usize = Hash::SIZE;
}
