//! Receipts kept on disk, with a lookup by transaction hash.
//!
//! Commonware prunable archives (the first two indexed by block height):
//! - `receipts`: per finalized block (key: its digest) the canonical bytes of its receipts in
//!   block order ([`logos_api::receipt`]), from which any receipt's inclusion proof under the
//!   block's `receipts_root` is rebuilt;
//! - `transactions`: per included transaction (key: its hash) its `(height, position)`;
//! - `epoch-proofs`, indexed by epoch: per epoch the proof of its committee from the previous
//!   epoch's last block ([`EpochProofParts`]), written when that block is finalized (or, after
//!   a crash in between, when the node restarts on it), never pruned (light clients walk every
//!   committee change from genesis);
//! - `epoch-boundaries`, indexed by epoch (key: a hash of the height): on a state-synced
//!   node, per epoch below its floor the previous epoch's last block's header and
//!   finalization certificate (codec bytes), which it holds no block of
//!   (`logos_node::statesync`), never pruned. With the epoch proofs they let it serve the
//!   committee walk from genesis.
//!
//! The finalizer writes a block's receipts before it applies the block's state: each
//! [`ReceiptStore::put`] hands the writes to the operating system and starts their fsync in the
//! background, and before the finalizer commits a group of blocks' state it awaits those fsyncs
//! ([`ReceiptStore::take_syncs`]). So a killed process never leaves the state holding a block
//! whose receipts are lost, and committed state's receipts are on disk. A redelivered block
//! (above the reopened state) has its receipts written again where a crash left them
//! incomplete. Both archives prune with the node's retention window (whole sections of
//! `items_per_section` heights).

use crate::engine::archive_config;
use commonware_codec::RangeCfg;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Handle, Metrics, Storage};
use commonware_storage::{
    archive::{prunable, Archive as _, Identifier, MultiArchive as _},
    translator::EightCap,
};
use logos_api::receipt::RECEIPT_MAX_BYTES;
use logos_primitives::Hash;

/// Most receipts one block's entry may hold (the decoding bound; a block holds at most
/// `max_block_transactions`, which genesis validation caps at this).
pub const RECEIPTS_PER_BLOCK_MAX: usize = logos_types::genesis::MAX_BLOCK_TRANSACTIONS_MAX as usize;

type Receipts<E> = prunable::Archive<EightCap, E, Hash, Vec<Vec<u8>>>;

/// Epochs per section of the `epoch-proofs` archive.
pub const EPOCH_PROOFS_PER_SECTION: u64 = 64;
/// Largest part of an epoch proof entry, bytes: a storage value or a state proof.
pub const EPOCH_PROOF_PART_MAX_BYTES: usize = logos_types::storage::STORAGE_VALUE_MAX_BYTES
    + 32 * logos_api::proof::PROOF_DIGESTS_MAX
    + 1_024;

/// One epoch's committee proof as stored: the previous epoch's last block and, proven against
/// its state root, the epoch that starts after it and the committee (see
/// `logos_api::rpc::EpochProof`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochProofParts {
    /// Height of the previous epoch's last block.
    pub height: u64,
    /// `staking::CurrentEpoch` after it, codec bytes.
    pub epoch_info: Vec<u8>,
    /// Its state proof, codec bytes.
    pub epoch_info_proof: Vec<u8>,
    /// `staking::Committees[epoch]` after it, codec bytes.
    pub committee: Vec<u8>,
    /// Its state proof, codec bytes.
    pub committee_proof: Vec<u8>,
}

impl EpochProofParts {
    fn into_entry(self) -> Vec<Vec<u8>> {
        vec![
            self.height.to_be_bytes().to_vec(),
            self.epoch_info,
            self.epoch_info_proof,
            self.committee,
            self.committee_proof,
        ]
    }

    fn from_entry(entry: Vec<Vec<u8>>) -> Result<Self, ReceiptStoreError> {
        let [height, epoch_info, epoch_info_proof, committee, committee_proof]: [Vec<u8>; 5] =
            entry
                .try_into()
                .map_err(|_| storage_error("an epoch proof entry is not five parts"))?;
        let height: [u8; 8] = height
            .try_into()
            .map_err(|_| storage_error("an epoch proof height is not 8 bytes"))?;
        Ok(Self {
            height: u64::from_be_bytes(height),
            epoch_info,
            epoch_info_proof,
            committee,
            committee_proof,
        })
    }
}
type Positions<E> = prunable::Archive<EightCap, E, Hash, (u64, u32)>;

/// Errors of the receipt store.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptStoreError {
    /// The storage engine failed.
    #[error("receipt storage: {0}")]
    Storage(String),
}

fn storage_error(error: impl std::fmt::Display) -> ReceiptStoreError {
    ReceiptStoreError::Storage(error.to_string())
}

/// Where a transaction's receipt is, with its block's receipts (canonical bytes, in order).
pub struct Located {
    /// Height of the block that included the transaction.
    pub height: u64,
    /// Its position in the block.
    pub index: u32,
    /// The block's receipts.
    pub receipts: Vec<Vec<u8>>,
}

/// The receipt store (see the module docs).
pub struct ReceiptStore<E: Storage + Metrics + Clock> {
    receipts: Option<Receipts<E>>,
    positions: Option<Positions<E>>,
    epochs: Option<Receipts<E>>,
    boundaries: Option<Receipts<E>>,
    /// Syncs started by [`Self::put`] and not yet taken by [`Self::take_syncs`] (at most two
    /// per block of a commit group).
    syncing: Vec<Handle<()>>,
}

impl<E: Storage + Metrics + Clock> ReceiptStore<E> {
    /// Opens (or creates) the store in partitions named after `prefix`.
    pub async fn open(
        context: E,
        prefix: &str,
        items_per_section: u64,
        page_cache: &CacheRef,
    ) -> Result<Self, ReceiptStoreError>
    where
        E: commonware_runtime::Supervisor,
    {
        let bytes_cfg = (
            RangeCfg::from(0..=RECEIPTS_PER_BLOCK_MAX),
            (RangeCfg::from(0..=RECEIPT_MAX_BYTES), ()),
        );
        let receipts = Receipts::init(
            context.child("receipts"),
            archive_config(prefix, "receipts", items_per_section, page_cache, bytes_cfg),
        )
        .await
        .map_err(storage_error)?;
        let positions = Positions::init(
            context.child("receipt_positions"),
            archive_config(
                prefix,
                "receipt-positions",
                items_per_section,
                page_cache,
                ((), ()),
            ),
        )
        .await
        .map_err(storage_error)?;
        let epochs = Receipts::init(
            context.child("epoch_proofs"),
            archive_config(
                prefix,
                "epoch-proofs",
                EPOCH_PROOFS_PER_SECTION,
                page_cache,
                (
                    RangeCfg::from(0..=5),
                    (RangeCfg::from(0..=EPOCH_PROOF_PART_MAX_BYTES), ()),
                ),
            ),
        )
        .await
        .map_err(storage_error)?;
        let boundaries = Receipts::init(
            context.child("epoch_boundaries"),
            archive_config(
                prefix,
                "epoch-boundaries",
                EPOCH_PROOFS_PER_SECTION,
                page_cache,
                (
                    RangeCfg::from(0..=2),
                    (RangeCfg::from(0..=EPOCH_PROOF_PART_MAX_BYTES), ()),
                ),
            ),
        )
        .await
        .map_err(storage_error)?;
        Ok(Self {
            receipts: Some(receipts),
            positions: Some(positions),
            epochs: Some(epochs),
            boundaries: Some(boundaries),
            syncing: Vec::new(),
        })
    }

    /// Stores the receipts of the finalized block at `height` (`digest`), whose transactions
    /// have `hashes` in block order; what is already stored of it is left as it is. The writes
    /// reach the operating system before this returns; they are durable once the handles of
    /// the next [`Self::take_syncs`] resolve.
    pub async fn put(
        &mut self,
        height: u64,
        digest: Hash,
        hashes: &[Hash],
        receipts: &[Vec<u8>],
    ) -> Result<(), ReceiptStoreError> {
        // The archives are append-only journals that sync independently: after a crash either
        // may hold the block without the other, and positions hold a prefix of the block's.
        let positions_stored = match hashes.last() {
            Some(last) => self
                .positions
                .as_ref()
                .ok_or_else(closed)?
                .has_at(height, last)
                .await
                .map_err(storage_error)?,
            None => true,
        };
        if !positions_stored {
            let mut positions = self.positions.take().ok_or_else(closed)?;
            for (index, hash) in hashes.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                // A position written again after a crash reads the same.
                positions = positions
                    .put_multi(height, *hash, &(height, index))
                    .await
                    .map_err(storage_error)?;
            }
            let (positions, handle) = positions.start_sync().await.map_err(storage_error)?;
            self.positions = Some(positions);
            self.syncing.push(handle);
        }
        put_once(
            &mut self.receipts,
            &mut self.syncing,
            height,
            digest,
            receipts.to_vec(),
        )
        .await
    }

    /// Stores `epoch`'s committee proof (taken at the previous epoch's last block); one
    /// already stored is left as it is. Durable like [`Self::put`].
    pub async fn put_epoch(
        &mut self,
        epoch: u64,
        parts: EpochProofParts,
    ) -> Result<(), ReceiptStoreError> {
        // Entries are found by epoch; the archive's key is only a fixed function of it.
        let digest = logos_primitives::hash(&[b"epoch-proof", &epoch.to_be_bytes()]);
        put_once(
            &mut self.epochs,
            &mut self.syncing,
            epoch,
            digest,
            parts.into_entry(),
        )
        .await
    }

    /// `epoch`'s committee proof, if this node recorded it.
    pub async fn epoch(&self, epoch: u64) -> Result<Option<EpochProofParts>, ReceiptStoreError> {
        let entry = self
            .epochs
            .as_ref()
            .ok_or_else(closed)?
            .get(Identifier::Index(epoch))
            .await
            .map_err(storage_error)?;
        entry.map(EpochProofParts::from_entry).transpose()
    }

    /// Stores the header and finalization certificate (codec bytes) of the block at `height`,
    /// the last block before `epoch` and below a state-synced node's floor, which the caller
    /// verified; one already stored for `epoch` is left as it is. Durable like [`Self::put`].
    pub async fn put_boundary(
        &mut self,
        epoch: u64,
        height: u64,
        header: Vec<u8>,
        certificate: Vec<u8>,
    ) -> Result<(), ReceiptStoreError> {
        put_once(
            &mut self.boundaries,
            &mut self.syncing,
            epoch,
            boundary_key(height),
            vec![header, certificate],
        )
        .await
    }

    /// The header and finalization certificate stored by [`Self::put_boundary`] at `height`.
    pub async fn boundary(
        &self,
        height: u64,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, ReceiptStoreError> {
        let entry = self
            .boundaries
            .as_ref()
            .ok_or_else(closed)?
            .get(Identifier::Key(&boundary_key(height)))
            .await
            .map_err(storage_error)?;
        entry
            .map(|entry| {
                <[Vec<u8>; 2]>::try_from(entry)
                    .map(|[header, certificate]| (header, certificate))
                    .map_err(|_| storage_error("an epoch boundary entry is not two parts"))
            })
            .transpose()
    }

    /// The fsyncs started since the last call: every receipt written so far is durable once
    /// they resolve. The caller awaits them without holding the store, so readers are not held
    /// up by the fsync.
    pub fn take_syncs(&mut self) -> Vec<Handle<()>> {
        std::mem::take(&mut self.syncing)
    }

    /// Where the receipt of transaction `hash` is, if a retained finalized block holds it
    /// (`None` too when its block's receipts were pruned and its position not yet).
    pub async fn locate(&self, hash: &Hash) -> Result<Option<Located>, ReceiptStoreError> {
        let positions = self.positions.as_ref().ok_or_else(closed)?;
        let Some((height, index)) = positions
            .get(Identifier::Key(hash))
            .await
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        let receipts = self
            .receipts()?
            .get(Identifier::Index(height))
            .await
            .map_err(storage_error)?;
        Ok(receipts.map(|receipts| Located {
            height,
            index,
            receipts,
        }))
    }

    /// The receipts of the block at `height`, if retained.
    pub async fn block(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, ReceiptStoreError> {
        self.receipts()?
            .get(Identifier::Index(height))
            .await
            .map_err(storage_error)
    }

    /// Drops the receipts of blocks below `min_height` (whole sections): positions first, so
    /// a crash in between leaves no position naming pruned receipts.
    pub async fn prune(&mut self, min_height: u64) -> Result<(), ReceiptStoreError> {
        let positions = self.positions.take().ok_or_else(closed)?;
        self.positions = Some(positions.prune(min_height).await.map_err(storage_error)?);
        let receipts = self.receipts.take().ok_or_else(closed)?;
        self.receipts = Some(receipts.prune(min_height).await.map_err(storage_error)?);
        Ok(())
    }

    fn receipts(&self) -> Result<&Receipts<E>, ReceiptStoreError> {
        self.receipts.as_ref().ok_or_else(closed)
    }
}

/// Writes `value` at `index` of the archive in `slot` unless an entry is there already, and
/// starts its fsync (the handle joins `syncing`). A failed write leaves the slot empty.
async fn put_once<E: Storage + Metrics + Clock>(
    slot: &mut Option<Receipts<E>>,
    syncing: &mut Vec<Handle<()>>,
    index: u64,
    key: Hash,
    value: Vec<Vec<u8>>,
) -> Result<(), ReceiptStoreError> {
    let stored = slot
        .as_ref()
        .ok_or_else(closed)?
        .has(Identifier::Index(index))
        .await
        .map_err(storage_error)?;
    if stored {
        return Ok(());
    }
    let archive = slot.take().ok_or_else(closed)?;
    let (archive, handle) = archive
        .put(index, key, &value)
        .await
        .map_err(storage_error)?
        .start_sync()
        .await
        .map_err(storage_error)?;
    *slot = Some(archive);
    syncing.push(handle);
    Ok(())
}

/// The `epoch-boundaries` archive's key of the block at `height`.
fn boundary_key(height: u64) -> Hash {
    logos_primitives::hash(&[b"epoch-boundary", &height.to_be_bytes()])
}

/// A failed write consumed an archive: every later call says so.
fn closed() -> ReceiptStoreError {
    ReceiptStoreError::Storage("the store failed earlier and is closed".into())
}
