//! Signed transactions and the top-level call and event enums.
//!
//! Wire form of a transaction (all integers big-endian, fixed width):
//! ```text
//! chain_id (32) | sender ed25519 key (32) | nonce u64 (8) | fee u128 (16) | call | signature (64)
//! call = module index (1) | call index (1) | arguments (module-defined, bounded)
//! ```
//! The signature covers everything before it, under [`crate::TRANSACTION_NAMESPACE`].

use crate::{
    modules::{balances, dvci, market, operations, provisioning},
    TRANSACTION_NAMESPACE,
};
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_cryptography::{Signer, Verifier};
use logos_primitives::{hash, Address, Amount, ChainId, Hash, PrivateKey, PublicKey, Signature};

/// Maximum encoded size of a transaction in bytes. Larger transactions are rejected on decode.
pub const TRANSACTION_MAX_BYTES: usize = 1024;

/// A call into one on-chain module. The first byte on the wire is the module index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "module", rename_all = "snake_case")]
pub enum Call {
    /// Module index 0: [`balances`].
    Balances(balances::Call),
    /// Module index 1: [`dvci`].
    Dvci(dvci::Call),
    /// Module index 2: [`market`].
    Market(market::Call),
    /// Module index 3: [`operations`].
    Operations(operations::Call),
    /// Module index 4: [`provisioning`].
    Provisioning(provisioning::Call),
}

impl Call {
    /// Module index of `balances`.
    pub const BALANCES: u8 = balances::MODULE_INDEX;
    /// Module index of `dvci`.
    pub const DVCI: u8 = dvci::MODULE_INDEX;
    /// Module index of `market`.
    pub const MARKET: u8 = market::MODULE_INDEX;
    /// Module index of `operations`.
    pub const OPERATIONS: u8 = operations::MODULE_INDEX;
    /// Module index of `provisioning`.
    pub const PROVISIONING: u8 = provisioning::MODULE_INDEX;
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::Balances(call) => {
                Self::BALANCES.write(buf);
                call.write(buf);
            }
            Call::Dvci(call) => {
                Self::DVCI.write(buf);
                call.write(buf);
            }
            Call::Market(call) => {
                Self::MARKET.write(buf);
                call.write(buf);
            }
            Call::Operations(call) => {
                Self::OPERATIONS.write(buf);
                call.write(buf);
            }
            Call::Provisioning(call) => {
                Self::PROVISIONING.write(buf);
                call.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + match self {
            Call::Balances(call) => call.encode_size(),
            Call::Dvci(call) => call.encode_size(),
            Call::Market(call) => call.encode_size(),
            Call::Operations(call) => call.encode_size(),
            Call::Provisioning(call) => call.encode_size(),
        }
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            Self::BALANCES => Ok(Call::Balances(balances::Call::read(buf)?)),
            Self::DVCI => Ok(Call::Dvci(dvci::Call::read(buf)?)),
            Self::MARKET => Ok(Call::Market(market::Call::read(buf)?)),
            Self::OPERATIONS => Ok(Call::Operations(operations::Call::read(buf)?)),
            Self::PROVISIONING => Ok(Call::Provisioning(provisioning::Call::read(buf)?)),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// An event emitted by a module during execution.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "module", rename_all = "snake_case")]
pub enum Event {
    /// An event of [`balances`].
    Balances(balances::Event),
    /// An event of [`dvci`].
    Dvci(dvci::Event),
    /// An event of [`market`].
    Market(market::Event),
    /// An event of [`operations`].
    Operations(operations::Event),
    /// An event of [`provisioning`].
    Provisioning(provisioning::Event),
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPayload {
    /// The network this transaction is valid on.
    pub chain_id: ChainId,
    /// The signer; its [`Address`] is the sender.
    pub sender: PublicKey,
    /// The sender's next nonce (starts at 0, increments by one per included transaction).
    pub nonce: u64,
    /// The fee in the smallest unit, paid to the block's author.
    pub fee: Amount,
    /// What to do.
    pub call: Call,
}

impl Write for TransactionPayload {
    fn write(&self, buf: &mut impl BufMut) {
        self.chain_id.write(buf);
        self.sender.write(buf);
        self.nonce.write(buf);
        self.fee.write(buf);
        self.call.write(buf);
    }
}

impl EncodeSize for TransactionPayload {
    fn encode_size(&self) -> usize {
        self.chain_id.encode_size()
            + self.sender.encode_size()
            + self.nonce.encode_size()
            + self.fee.encode_size()
            + self.call.encode_size()
    }
}

impl Read for TransactionPayload {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            chain_id: ChainId::read(buf)?,
            sender: PublicKey::read(buf)?,
            nonce: u64::read(buf)?,
            fee: Amount::read(buf)?,
            call: Call::read(buf)?,
        })
    }
}

impl TransactionPayload {
    /// Signs the payload with `key`. Panics if `key` is not the payload's sender (a caller bug).
    pub fn sign(self, key: &PrivateKey) -> Transaction {
        assert_eq!(key.public_key(), self.sender, "signer is not the sender");
        let signature = key.sign(TRANSACTION_NAMESPACE, &self.encode());
        Transaction::new(self, signature)
    }
}

/// A signed transaction with its hash computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    payload: TransactionPayload,
    signature: Signature,
    hash: Hash,
    size_bytes: u32,
}

/// Why a transaction is malformed or unauthorised on its own (before looking at state).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TransactionError {
    /// The bytes do not decode to a transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The encoded transaction is larger than [`TRANSACTION_MAX_BYTES`].
    #[error("transaction is {size_bytes} bytes, the limit is {TRANSACTION_MAX_BYTES}")]
    Oversize {
        /// Size of the offered transaction.
        size_bytes: usize,
    },
    /// The signature does not verify against the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// The transaction is for another network.
    #[error("wrong chain id: expected {expected}, got {actual}")]
    WrongChainId {
        /// This network's chain id.
        expected: ChainId,
        /// The transaction's chain id.
        actual: ChainId,
    },
}

impl Transaction {
    fn new(payload: TransactionPayload, signature: Signature) -> Self {
        let size_bytes = payload.encode_size() + signature.encode_size();
        let mut bytes = Vec::with_capacity(size_bytes);
        payload.write(&mut bytes);
        signature.write(&mut bytes);
        Self {
            hash: hash(&[&bytes]),
            size_bytes: size_bytes as u32,
            payload,
            signature,
        }
    }

    /// Decodes a transaction from its wire bytes, enforcing [`TRANSACTION_MAX_BYTES`].
    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, TransactionError> {
        use commonware_codec::DecodeExt;
        if bytes.len() > TRANSACTION_MAX_BYTES {
            return Err(TransactionError::Oversize {
                size_bytes: bytes.len(),
            });
        }
        Self::decode(commonware_codec::Copying(bytes))
            .map_err(|error| TransactionError::Malformed(error.to_string()))
    }

    /// The signed payload.
    pub fn payload(&self) -> &TransactionPayload {
        &self.payload
    }

    /// The signature over the payload.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// SHA-256 of the wire encoding.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Size of the wire encoding in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes as usize
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        Address::from_public_key(&self.payload.sender)
    }

    /// Checks the chain id and the signature (one ed25519 verification).
    pub fn verify(&self, chain_id: &ChainId) -> Result<(), TransactionError> {
        self.check_chain_id(chain_id)?;
        self.verify_signature()
    }

    /// Checks that the transaction is for `chain_id`.
    pub fn check_chain_id(&self, chain_id: &ChainId) -> Result<(), TransactionError> {
        if &self.payload.chain_id != chain_id {
            return Err(TransactionError::WrongChainId {
                expected: *chain_id,
                actual: self.payload.chain_id,
            });
        }
        Ok(())
    }

    /// Verifies the signature against the sender's key.
    pub fn verify_signature(&self) -> Result<(), TransactionError> {
        let message = self.payload.encode();
        if self
            .payload
            .sender
            .verify(TRANSACTION_NAMESPACE, &message, &self.signature)
        {
            Ok(())
        } else {
            Err(TransactionError::BadSignature)
        }
    }
}

impl Write for Transaction {
    fn write(&self, buf: &mut impl BufMut) {
        self.payload.write(buf);
        self.signature.write(buf);
    }
}

impl EncodeSize for Transaction {
    fn encode_size(&self) -> usize {
        self.size_bytes as usize
    }
}

impl Read for Transaction {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let payload = TransactionPayload::read(buf)?;
        let signature = Signature::read(buf)?;
        let transaction = Self::new(payload, signature);
        if transaction.size_bytes() > TRANSACTION_MAX_BYTES {
            return Err(CodecError::Invalid("Transaction", "oversize"));
        }
        Ok(transaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::DecodeExt;

    fn transfer(key: &PrivateKey, chain_id: ChainId, nonce: u64) -> Transaction {
        TransactionPayload {
            chain_id,
            sender: key.public_key(),
            nonce,
            fee: Amount(10),
            call: Call::Balances(balances::Call::Transfer {
                to: Address([9; 20]),
                amount: Amount(5),
            }),
        }
        .sign(key)
    }

    #[test]
    fn transaction_round_trips_and_verifies() {
        let key = PrivateKey::from_seed(1);
        let chain_id = ChainId(hash(&[b"a"]));
        let transaction = transfer(&key, chain_id, 3);
        let decoded = Transaction::decode(transaction.encode()).unwrap();
        assert_eq!(decoded, transaction);
        assert_eq!(decoded.hash(), transaction.hash());
        assert_eq!(decoded.verify(&chain_id), Ok(()));
    }

    #[test]
    fn wrong_chain_id_and_tampering_are_rejected() {
        let key = PrivateKey::from_seed(1);
        let chain_id = ChainId(hash(&[b"a"]));
        let other = ChainId(hash(&[b"b"]));
        let transaction = transfer(&key, chain_id, 0);
        assert!(matches!(
            transaction.verify(&other),
            Err(TransactionError::WrongChainId { .. })
        ));
        let mut bytes = transaction.encode().to_vec();
        bytes[70] ^= 1; // flip a bit of the nonce
        let tampered = Transaction::decode_bytes(&bytes).unwrap();
        assert_eq!(
            tampered.verify(&chain_id),
            Err(TransactionError::BadSignature)
        );
    }

    #[test]
    fn malformed_and_oversize_bytes_are_rejected() {
        assert!(matches!(
            Transaction::decode_bytes(&[1, 2, 3]),
            Err(TransactionError::Malformed(_))
        ));
        assert!(matches!(
            Transaction::decode_bytes(&vec![0u8; TRANSACTION_MAX_BYTES + 1]),
            Err(TransactionError::Oversize { .. })
        ));
        let key = PrivateKey::from_seed(1);
        let mut bytes = transfer(&key, ChainId(hash(&[b"a"])), 0).encode().to_vec();
        bytes[88] = 7; // unknown module index (after chain id, sender, nonce, fee)
        assert!(matches!(
            Transaction::decode_bytes(&bytes),
            Err(TransactionError::Malformed(_))
        ));
    }
}
