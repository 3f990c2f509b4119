//! Types of `peers` (module index 6): the full nodes the validators let connect over p2p.
//!
//! A full node is a non-voting p2p peer (`logos node run --role full`). Validators accept only
//! peers they know, so a full node is either in a validator's configuration (`full_nodes`) or
//! registered here: an account registers a node's p2p key with the IP address its connections
//! come from, proves it holds the key (a signature by the node key over
//! [`registration_message`]: chain id, account, address), and reserves a deposit until it
//! deregisters. Every validator reads the registry from finalized state and tracks exactly the
//! registered keys (and its configured ones) as commonware-p2p secondary peers, so a
//! deregistered key loses its slot at the next read; at most [`FULL_NODES_MAX`] are registered
//! at once, so each validator's peer table stays bounded, and the deposit
//! ([`DEFAULT_MINIMUM_DEPOSIT`], as much as a devnet provider's bond) makes holding the slots
//! cost tokens. Validators block a full node that sends on a consensus channel.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`FullNodes`] | [`NodeKey`] | [`FullNode`] |
//! | 1 [`FullNodeKeys`] | | the keys of [`FullNodes`], ascending (what nodes poll) |
//! | 2 [`MinimumDeposit`] | | [`Amount`], default [`DEFAULT_MINIMUM_DEPOSIT`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterFullNode`] | any account; signed by the node key |
//! | 1 | [`Call::DeregisterFullNode`] | the registering account |
//! | 2 | [`Call::SetMinimumDeposit`] | privileged |

use crate::{calls, codec::BoundedVec, errors, events, record, storage};
use bytes::{Buf, BufMut};
use commonware_codec::{Encode, Error as CodecError, FixedSize, Read, Write};
use commonware_cryptography::Signer;
use logos_primitives::{Address, Amount, ChainId, KeySignature, NodeKey, PrivateKey};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "peers";
/// Module index of `peers`: storage prefix, call routing, error index.
pub const INDEX: u8 = 6;

/// Most full nodes registered at once (each is a p2p peer slot on every validator).
pub const FULL_NODES_MAX: usize = 256;
/// Default minimum deposit of a registration, smallest unit.
pub const DEFAULT_MINIMUM_DEPOSIT: Amount = Amount(1_000_000_000);
/// Namespace of the node key's signature over [`registration_message`].
pub const REGISTRATION_NAMESPACE: &[u8] = b"logos-full-node-registration-v1";

/// A p2p address: an IP (IPv4 as IPv4-mapped IPv6, 16 bytes) and a port, 18 bytes on the wire;
/// text and JSON form `IP:port` (IPv6 in brackets). Stored as bytes so that execution never
/// parses text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct P2pAddress {
    /// The IP, IPv6 octets (IPv4 mapped into `::ffff:0:0/96`).
    pub ip: [u8; 16],
    /// The port.
    pub port: u16,
}

impl P2pAddress {
    /// The IP as std's type (IPv4-mapped addresses back to IPv4).
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    /// The address as std's type.
    pub fn socket_address(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }

    /// True if connections can come from this IP: not unspecified and not multicast (checks
    /// on the bytes alone, the same on every platform and toolchain).
    pub fn is_source(&self) -> bool {
        match self.ip() {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
            IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_multicast(),
        }
    }
}

impl From<SocketAddr> for P2pAddress {
    fn from(address: SocketAddr) -> Self {
        let ip = match address.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Self {
            ip: ip.octets(),
            port: address.port(),
        }
    }
}

impl std::fmt::Display for P2pAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.socket_address().fmt(f)
    }
}

impl std::fmt::Debug for P2pAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for P2pAddress {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<SocketAddr>().map(Self::from)
    }
}

impl serde::Serialize for P2pAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for P2pAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Write for P2pAddress {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.ip);
        buf.put_u16(self.port);
    }
}

impl Read for P2pAddress {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        if buf.remaining() < Self::SIZE {
            return Err(CodecError::EndOfBuffer);
        }
        let mut ip = [0u8; 16];
        buf.copy_to_slice(&mut ip);
        Ok(Self {
            ip,
            port: buf.get_u16(),
        })
    }
}

impl FixedSize for P2pAddress {
    const SIZE: usize = 18;
}

/// A registered full node.
#[record]
pub struct FullNode {
    /// The account that registered it (and alone may deregister it).
    pub owner: Address,
    /// Where its p2p connections come from: validators accept the key only from this IP (the
    /// port is not dialed; full nodes dial validators).
    pub address: P2pAddress,
    /// Tokens reserved from the owner while registered, smallest unit.
    pub deposit: Amount,
}

/// What the node key signs to register: the chain, the registering account and the address,
/// so that a signature cannot be reused on another chain, by another account or for another
/// address.
pub fn registration_message(chain_id: &ChainId, owner: &Address, address: &P2pAddress) -> Vec<u8> {
    let mut message = chain_id.encode().to_vec();
    message.extend(owner.encode());
    message.extend(address.encode());
    message
}

/// The node key and its signature for registering `node` on `chain_id` by `owner` at
/// `address`.
pub fn sign_registration(
    node: &PrivateKey,
    chain_id: &ChainId,
    owner: &Address,
    address: &P2pAddress,
) -> (NodeKey, KeySignature) {
    let message = registration_message(chain_id, owner, address);
    let signature = node.sign(REGISTRATION_NAMESPACE, &message);
    (
        NodeKey::from_public_key(&node.public_key()),
        KeySignature::from_signature(&signature),
    )
}

/// Calls of `peers`.
#[calls]
pub enum Call {
    /// Register a full node's p2p key, reserving `deposit` from the sender's balance.
    #[index(0)]
    RegisterFullNode {
        /// The node's p2p public key.
        key: NodeKey,
        /// The IP its connections come from, with any port.
        address: P2pAddress,
        /// Deposit, at least [`MinimumDeposit`].
        deposit: Amount,
        /// The node key's signature over [`registration_message`] (chain id, sender, address)
        /// in [`REGISTRATION_NAMESPACE`].
        signature: KeySignature,
    },
    /// (owner) Deregister a full node and release its deposit.
    #[index(1)]
    DeregisterFullNode {
        /// The node's p2p public key.
        key: NodeKey,
    },
    /// (privileged) Set the minimum deposit of new registrations.
    #[index(2)]
    SetMinimumDeposit {
        /// The new minimum, smallest unit.
        deposit: Amount,
    },
}

/// Events of `peers`.
#[events]
pub enum Event {
    /// A full node was registered.
    FullNodeRegistered {
        /// Its p2p key.
        key: NodeKey,
        /// The registering account.
        owner: Address,
    },
    /// A full node was deregistered and its deposit released.
    FullNodeDeregistered {
        /// Its p2p key.
        key: NodeKey,
    },
    /// The minimum deposit changed.
    MinimumDepositChanged {
        /// New minimum.
        deposit: Amount,
    },
}

/// Errors of `peers`.
#[errors]
pub enum Error {
    /// The key is registered already.
    #[index(0)]
    #[error("full node {0} is registered already")]
    AlreadyRegistered(NodeKey),
    /// No such registration.
    #[index(1)]
    #[error("unknown full node {0}")]
    UnknownFullNode(NodeKey),
    /// Only the registering account may make this call.
    #[index(2)]
    #[error("not the full node's owner")]
    NotOwner,
    /// The key is not an ed25519 point.
    #[index(3)]
    #[error("invalid node key")]
    InvalidKey,
    /// The node key did not sign this registration.
    #[index(4)]
    #[error("the node key's signature does not verify")]
    BadSignature,
    /// The address's IP cannot be a connection's source (unspecified, multicast, broadcast).
    #[index(5)]
    #[error("address {0} cannot be a connection's source")]
    InvalidAddress(P2pAddress),
    /// The deposit is below the minimum.
    #[index(6)]
    #[error("deposit {offered} below the minimum {minimum}")]
    DepositTooLow {
        /// Offered.
        offered: Amount,
        /// Required.
        minimum: Amount,
    },
    /// [`FULL_NODES_MAX`] full nodes are registered.
    #[index(7)]
    #[error("registry full ({FULL_NODES_MAX} full nodes)")]
    RegistryFull,
}

storage! {
    module = INDEX;
    /// Registered full nodes by p2p key.
    pub FullNodes: map(0) NodeKey => FullNode;
    /// The keys of [`FullNodes`], ascending: what a node reads first to list the registry
    /// (256 keys of 32 bytes, 8 KiB).
    pub FullNodeKeys: value(1) BoundedVec<NodeKey, FULL_NODES_MAX>;
    /// The minimum deposit of a registration, smallest unit.
    pub MinimumDeposit: value(2) Amount = DEFAULT_MINIMUM_DEPOSIT;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    /// IPv4 travels IPv4-mapped and comes back as IPv4; text, JSON and wire forms round-trip;
    /// a short encoding is refused; sources exclude unspecified, multicast and broadcast.
    #[test]
    fn addresses_round_trip_in_every_form_and_only_sources_are_sources() {
        let v4: P2pAddress = "203.0.113.7:30400".parse().unwrap();
        assert_eq!(v4.ip[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(v4.to_string(), "203.0.113.7:30400");
        let v6: P2pAddress = "[2001:db8::1]:1".parse().unwrap();
        assert_eq!(v6.to_string(), "[2001:db8::1]:1");
        for address in [v4, v6] {
            let bytes = encode(&address);
            assert_eq!(bytes.len(), P2pAddress::SIZE);
            assert_eq!(decode::<P2pAddress>(&bytes).unwrap(), address);
            assert!(decode::<P2pAddress>(&bytes[..17]).is_err());
            let json = serde_json::to_string(&address).unwrap();
            assert_eq!(serde_json::from_str::<P2pAddress>(&json).unwrap(), address);
            assert!(address.is_source());
        }
        for text in [
            "0.0.0.0:1",
            "[::]:1",
            "239.1.2.3:1",
            "[ff02::1]:1",
            "255.255.255.255:1",
        ] {
            assert!(!text.parse::<P2pAddress>().unwrap().is_source(), "{text}");
        }
        assert!("localhost:1".parse::<P2pAddress>().is_err());
        assert!(serde_json::from_str::<P2pAddress>("\"1.2.3.4\"").is_err());
    }
}
