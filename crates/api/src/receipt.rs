//! Receipts a client can prove: every block commits to its transactions' receipts through the
//! `receipts_root` of its header ([`crate::block::BlockHeader`]).
//!
//! - A receipt's **canonical bytes** are its JSON form (`serde_json`, fields in declaration
//!   order, no whitespace) with the error's human `message` left empty: the transaction, the
//!   outcome, the failing module, error name and index, and the events are committed; wording
//!   is not (so rewording an error message is no consensus change). The node stores and serves
//!   these bytes; a client hashes the bytes it was served and only then parses them, so it
//!   never depends on re-encoding.
//! - The **leaf** of receipt `i` is `SHA-256(canonical bytes)`; the **receipts root** is the
//!   root of commonware's binary Merkle tree (`commonware_storage::bmt`: leaves hashed with
//!   their position, the root binds the leaf count) over the block's leaves in order. A block
//!   without transactions has the empty tree's root.
//! - A **receipt proof** is the tree's inclusion proof of one leaf (codec form, at most
//!   [`bmt::MAX_LEVELS`] siblings); [`verify_receipt`] checks it against a root taken from a
//!   header whose digest a finalization certificate signs.

use commonware_codec::{Decode as _, Encode};
use commonware_cryptography::{Hasher, Sha256};
use commonware_storage::bmt;
use logos_primitives::Hash;
use logos_types::Receipt;

/// Largest canonical receipt accepted from a server, bytes (a receipt holds a transaction's
/// events; the largest real ones are a few KiB).
pub const RECEIPT_MAX_BYTES: usize = 256 * 1024;

/// Errors verifying a served receipt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// The receipt is larger than [`RECEIPT_MAX_BYTES`].
    #[error("receipt of {0} bytes is above the limit of {RECEIPT_MAX_BYTES}")]
    TooLarge(usize),
    /// The proof does not decode (or has more siblings than a tree can need).
    #[error("malformed receipt proof")]
    MalformedProof,
    /// The receipt is not the one the block committed to at that position.
    #[error("the receipt is not committed by the block's receipts root")]
    NotCommitted,
    /// The bytes are committed but are not a receipt (cannot happen with an honest chain).
    #[error("committed bytes are not a receipt: {0}")]
    Undecodable(String),
    /// The receipt names another transaction than the one asked for.
    #[error("the receipt is for another transaction")]
    WrongTransaction,
}

/// The canonical bytes of `receipt` (see the module docs).
pub fn receipt_bytes(receipt: &Receipt) -> Vec<u8> {
    let mut committed = receipt.clone();
    if let Some(error) = committed.error.as_mut() {
        error.message.clear();
    }
    // Serializing these plain data types cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_vec(&committed).unwrap_or_default()
}

fn tree(leaves: &[Vec<u8>]) -> bmt::Tree<Hash> {
    let mut builder = bmt::Builder::<Sha256>::new(leaves.len());
    for bytes in leaves {
        builder.add(&Sha256::hash(&[bytes]));
    }
    builder.build()
}

/// The receipts root of a block whose receipts have these canonical bytes, in order.
pub fn receipts_root_of_bytes(receipts: &[Vec<u8>]) -> Hash {
    tree(receipts).root()
}

/// The receipts root of a block with `receipts`, in order.
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    let bytes: Vec<Vec<u8>> = receipts.iter().map(receipt_bytes).collect();
    receipts_root_of_bytes(&bytes)
}

/// The codec form of the inclusion proof of receipt `index` among `receipts` (canonical
/// bytes, in block order); `None` if there is no such receipt.
pub fn receipt_proof(receipts: &[Vec<u8>], index: u32) -> Option<Vec<u8>> {
    if index as usize >= receipts.len() {
        return None;
    }
    let proof = tree(receipts).proof(index).ok()?;
    Some(proof.encode().to_vec())
}

/// Checks that `bytes` is receipt `index` under `receipts_root` with `proof` (codec form), and
/// that it is the receipt of `transaction`; returns the parsed receipt.
pub fn verify_receipt(
    bytes: &[u8],
    index: u32,
    proof: &[u8],
    receipts_root: &Hash,
    transaction: &Hash,
) -> Result<Receipt, ReceiptError> {
    if bytes.len() > RECEIPT_MAX_BYTES {
        return Err(ReceiptError::TooLarge(bytes.len()));
    }
    let proof = decode_proof(proof)?;
    proof
        .verify_element_inclusion::<Sha256>(&Sha256::hash(&[bytes]), index, receipts_root)
        .map_err(|_| ReceiptError::NotCommitted)?;
    let receipt: Receipt = serde_json::from_slice(bytes)
        .map_err(|error| ReceiptError::Undecodable(error.to_string()))?;
    if &receipt.transaction != transaction {
        return Err(ReceiptError::WrongTransaction);
    }
    Ok(receipt)
}

fn decode_proof(bytes: &[u8]) -> Result<bmt::Proof<Hash>, ReceiptError> {
    // One proven item: at most MAX_LEVELS siblings (the codec bound); no trailing bytes.
    bmt::Proof::<Hash>::decode_cfg(commonware_codec::Copying(bytes), &1)
        .map_err(|_| ReceiptError::MalformedProof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_primitives::Amount;
    use logos_types::{balances, CallError, Event};

    fn receipt(seed: u8, success: bool) -> Receipt {
        Receipt {
            transaction: Hash::from([seed; 32]),
            success,
            error: (!success).then(|| {
                Box::new(CallError {
                    module: "balances".into(),
                    error: "InsufficientBalance".into(),
                    index: [0, 1],
                    message: "not enough".into(),
                })
            }),
            events: vec![Event::Balances(balances::Event::FeePaid {
                payer: logos_primitives::Address([seed; 20]),
                author: logos_primitives::Address([9; 20]),
                amount: Amount(1_000),
            })],
        }
    }

    fn block() -> Vec<Vec<u8>> {
        (0..5u8)
            .map(|seed| receipt_bytes(&receipt(seed, seed % 2 == 0)))
            .collect()
    }

    #[test]
    fn every_receipt_of_a_block_verifies_at_its_position() {
        let receipts = block();
        let root = receipts_root_of_bytes(&receipts);
        for (index, bytes) in receipts.iter().enumerate() {
            let proof = receipt_proof(&receipts, index as u32).unwrap();
            let parsed = verify_receipt(
                bytes,
                index as u32,
                &proof,
                &root,
                &Hash::from([index as u8; 32]),
            )
            .unwrap();
            assert_eq!(receipt_bytes(&parsed), *bytes, "canonical bytes round-trip");
        }
        assert_eq!(receipt_proof(&receipts, 5), None);
    }

    #[test]
    fn forged_receipts_positions_roots_and_proofs_are_refused() {
        let receipts = block();
        let root = receipts_root_of_bytes(&receipts);
        let proof = receipt_proof(&receipts, 1).unwrap();
        let target = Hash::from([1; 32]);
        // The failed call claimed as a success.
        let mut flipped = receipt(1, true);
        flipped.transaction = target;
        let forged = receipt_bytes(&flipped);
        assert_eq!(
            verify_receipt(&forged, 1, &proof, &root, &target),
            Err(ReceiptError::NotCommitted)
        );
        // A genuine receipt at another position, or under another block's root.
        assert_eq!(
            verify_receipt(&receipts[1], 2, &proof, &root, &target),
            Err(ReceiptError::NotCommitted)
        );
        let other_root = receipts_root_of_bytes(&receipts[..4]);
        assert_eq!(
            verify_receipt(&receipts[1], 1, &proof, &other_root, &target),
            Err(ReceiptError::NotCommitted)
        );
        // A genuine receipt served for another transaction.
        assert_eq!(
            verify_receipt(&receipts[1], 1, &proof, &root, &Hash::from([3; 32])),
            Err(ReceiptError::WrongTransaction)
        );
        // Malformed, trailing and oversize input.
        assert_eq!(
            verify_receipt(&receipts[1], 1, &[1, 2, 3], &root, &target),
            Err(ReceiptError::MalformedProof)
        );
        let mut trailing = proof.clone();
        trailing.push(0);
        assert_eq!(
            verify_receipt(&receipts[1], 1, &trailing, &root, &target),
            Err(ReceiptError::MalformedProof)
        );
        let long = bmt::Proof::<Hash> {
            leaf_count: 5,
            siblings: vec![Hash::from([0; 32]); bmt::MAX_LEVELS + 1],
        };
        assert_eq!(
            verify_receipt(&receipts[1], 1, &long.encode(), &root, &target),
            Err(ReceiptError::MalformedProof)
        );
        let huge = vec![b' '; RECEIPT_MAX_BYTES + 1];
        assert_eq!(
            verify_receipt(&huge, 1, &proof, &root, &target),
            Err(ReceiptError::TooLarge(RECEIPT_MAX_BYTES + 1))
        );
    }

    #[test]
    fn rewording_an_error_changes_no_root_but_its_index_does() {
        let mut reworded = receipt(1, false);
        reworded.error.as_mut().unwrap().message = "other words".into();
        assert_eq!(receipt_bytes(&reworded), receipt_bytes(&receipt(1, false)));
        reworded.error.as_mut().unwrap().index = [0, 2];
        assert_ne!(receipt_bytes(&reworded), receipt_bytes(&receipt(1, false)));
    }

    #[test]
    fn an_empty_block_has_a_root_and_no_provable_receipt() {
        let root = receipts_root(&[]);
        assert_eq!(root, receipts_root_of_bytes(&[]));
        assert_ne!(root, receipts_root(&[receipt(0, true)]));
        assert_eq!(receipt_proof(&[], 0), None);
    }
}
