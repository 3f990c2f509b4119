//! Signed transactions.
//!
//! Wire form of a transaction (all integers big-endian, fixed width):
//! ```text
//! chain_id (32) | sender ed25519 key (32) | nonce u64 (8) | fee u128 (16) | call | signature (64)
//! call = module index (1) | call index (1) | arguments (module-defined, bounded)
//! ```
//! The signature covers everything before it, under [`TRANSACTION_NAMESPACE`].

use crate::{
    codec::{Buf, BufMut, EncodeSize, Error as CodecError, Read, ReadExt, Write},
    Call, Codec,
};
use commonware_codec::Encode;
use commonware_cryptography::{Signer, Verifier};
use logos_primitives::{hash, Address, Amount, ChainId, Hash, PrivateKey, PublicKey, Signature};

/// Namespace of transaction signatures (prepended to the signed payload by ed25519 signing).
pub const TRANSACTION_NAMESPACE: &[u8] = b"logos-transaction-v1";

/// Maximum encoded size of a transaction in bytes. Larger transactions are rejected on decode.
pub const TRANSACTION_MAX_BYTES: usize = 1024;

/// Bytes of a transaction besides its call: chain id, sender key, nonce, fee and signature.
pub const TRANSACTION_OVERHEAD_BYTES: usize = 32 + 32 + 8 + 16 + 64;

/// The encoded size of a transaction carrying `call`, bytes (compare with
/// [`TRANSACTION_MAX_BYTES`]).
pub fn transaction_size(call: &Call) -> usize {
    TRANSACTION_OVERHEAD_BYTES.saturating_add(call.encode_size())
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Codec)]
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

impl TransactionPayload {
    /// Signs the payload with `key` (the sender becomes `key`'s public key).
    pub fn sign(mut self, key: &PrivateKey) -> Transaction {
        self.sender = key.public_key();
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
        let size_bytes = payload
            .encode_size()
            .saturating_add(signature.encode_size());
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
    use crate::balances;
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
        assert_eq!(
            transaction_size(&transaction.payload().call),
            transaction.encode().len()
        );
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
