//! The authenticated state layout and proof verification.
//!
//! State lives in a QMDB `current` database, **ordered** variant (commonware-storage; QMDB
//! paper: <https://arxiv.org/abs/2501.05262>): an append-only log of operations authenticated
//! by a Merkle Mountain Range, plus a bitmap of which operations are still active, grafted onto
//! the tree so one proof shows both that `key = value` was written and that it is still
//! current. Each active key also records the next active key in key order, so absence is
//! provable too: an [`AbsenceProof`] shows an active key whose successor lies beyond the asked
//! key (or that the state is empty).
//!
//! - The database key of a [`StorageKey`] is `SHA-256(storage key bytes)` ([`state_key`]).
//! - Values are the module's codec bytes.
//! - Each block commits one batch whose metadata is the block height (8 bytes, big-endian); the
//!   database root after that commit is the block's `state_root`.

use commonware_codec::{Decode, Encode, RangeCfg};
use commonware_cryptography::Sha256;
use commonware_storage::{
    mmr,
    qmdb::{any::value::VariableEncoding, current::ordered::proof::constant},
};
use logos_primitives::{hash, Hash};
use logos_types::{storage::STORAGE_VALUE_MAX_BYTES, StorageKey};

/// The Merkle family of the state database.
pub type StateFamily = mmr::Family;

/// Bytes per chunk of the activity bitmap (a power of two).
pub const BITMAP_CHUNK_BYTES: usize = 32;

/// A proof that a key currently has a value, under a state root.
pub type StateProof = constant::KeyValueProof<StateFamily, Hash, Hash, BITMAP_CHUNK_BYTES>;

/// A proof that a key currently has no value, under a state root.
pub type AbsenceProof =
    constant::ExclusionProof<StateFamily, Hash, StateValue, Hash, BITMAP_CHUNK_BYTES>;

/// How state values are encoded in the database (variable-length bytes).
pub type StateValue = VariableEncoding<Vec<u8>>;

/// Largest number of digests a decoded [`StateProof`] may carry.
pub const PROOF_DIGESTS_MAX: usize = 256;

/// The database key of a storage key.
pub fn state_key(key: &StorageKey) -> Hash {
    hash(&[key.as_bytes()])
}

/// Encodes a proof for transport.
pub fn encode_proof(proof: &StateProof) -> Vec<u8> {
    proof.encode().to_vec()
}

/// Decodes a transported proof (bounded by [`PROOF_DIGESTS_MAX`]).
pub fn decode_proof(bytes: &[u8]) -> Result<StateProof, commonware_codec::Error> {
    StateProof::decode_cfg(commonware_codec::Copying(bytes), &(PROOF_DIGESTS_MAX, ()))
}

/// Encodes an absence proof for transport.
pub fn encode_absence_proof(proof: &AbsenceProof) -> Vec<u8> {
    proof.encode().to_vec()
}

/// Decodes a transported absence proof (digests bounded by [`PROOF_DIGESTS_MAX`], the
/// neighbouring value by `STORAGE_VALUE_MAX_BYTES`).
pub fn decode_absence_proof(bytes: &[u8]) -> Result<AbsenceProof, commonware_codec::Error> {
    let value = (RangeCfg::from(0..=STORAGE_VALUE_MAX_BYTES), ());
    AbsenceProof::decode_cfg(
        commonware_codec::Copying(bytes),
        &(PROOF_DIGESTS_MAX, ((), value), value),
    )
}

/// True if `proof` shows that `key` currently holds `value` in the state with `root`.
pub fn verify_value(key: &StorageKey, value: &[u8], proof: &StateProof, root: &Hash) -> bool {
    proof.verify::<Sha256, StateValue>(state_key(key), value.to_vec(), root)
}

/// True if `proof` shows that `key` currently holds no value in the state with `root`.
pub fn verify_absence(key: &StorageKey, proof: &AbsenceProof, root: &Hash) -> bool {
    proof.verify::<Sha256>(&state_key(key), root)
}
