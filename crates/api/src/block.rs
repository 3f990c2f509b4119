//! Blocks.
//!
//! Wire form:
//! ```text
//! parent (32) | height u64 (8) | timestamp_ms u64 (8) | proposer ed25519 key (32)
//! | state_root (32) | receipts_root (32) | seed (1 + 48 or 1) | transaction count (varint)
//! | transactions…
//! ```
//! The digest is `SHA-256(parent | height | timestamp_ms | proposer | state_root | tx_root |
//! receipts_root | randomness)` with `tx_root = SHA-256(hash(tx_0) | … | hash(tx_n))`.
//!
//! **Randomness.** A block's `seed`, when present, is the group's threshold BLS signature of
//! its parent's height (module `beacon`: unique, so nobody chooses it, and unknown until a
//! quorum of the committee signed once the parent was proposed). The block's randomness is
//! `SHA-256(seed)`, or the parent's digest in a block without a seed (the parent's epoch had
//! no group key: epoch 0, or a `DkgFailed` epoch). Whether a block must carry a seed is the
//! chain's rule (`ChainState::verify`), not the codec's.
//!
//! `state_root` is the root of the authenticated state (see [`crate::proof`]) after executing
//! this block on its parent's state; `receipts_root` commits to the receipts that execution
//! gives (see [`crate::receipt`]). The genesis block (height 0) carries the chain id's hash in
//! its `state_root` field: it commits to the genesis content, whose state is built by every node.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error as CodecError, RangeCfg, Read, ReadExt, Write};
use commonware_cryptography::{Digestible, Hasher, Sha256};
use logos_primitives::{Hash, Height, PublicKey};
use logos_types::{Transaction, TRANSACTION_MAX_BYTES};

/// Decoding bounds of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCfg {
    /// Maximum number of transactions.
    pub max_transactions: usize,
}

/// A block of the Logos chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Digest of the parent block.
    pub parent: Hash,
    /// Height (genesis is 0).
    pub height: Height,
    /// Proposer's clock when proposing, ms since the Unix epoch (never decreases along a chain).
    pub timestamp_ms: u64,
    /// The leader that proposed the block; fees are credited to its address.
    pub proposer: PublicKey,
    /// Authenticated state root after this block.
    pub state_root: Hash,
    /// Root of the block's receipts ([`crate::receipt::receipts_root`]).
    pub receipts_root: Hash,
    /// The group's signature of the parent's height, if the parent's epoch has a group key.
    pub seed: Option<Seed>,
    /// Transactions in execution order.
    pub transactions: Vec<Transaction>,
    digest: Hash,
}

/// A threshold BLS signature of a height (BLS12-381 `MinSig`, a compressed G1 point: 48
/// bytes), as a block carries it. Only its bytes: the chain checks it against the epoch's
/// group key (`logos_beacon::verify_seed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub [u8; SEED_BYTES]);

/// Length of a [`Seed`] (bytes).
pub const SEED_BYTES: usize = 48;

impl Seed {
    /// The randomness it gives: `SHA-256(seed)`.
    pub fn randomness(&self) -> Hash {
        logos_primitives::hash(&[&self.0])
    }
}

impl Write for Seed {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl commonware_codec::FixedSize for Seed {
    const SIZE: usize = SEED_BYTES;
}

impl Read for Seed {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(<[u8; SEED_BYTES]>::read(buf)?))
    }
}

impl Block {
    /// Assembles a block and computes its digest (`seed`: see the module docs).
    // One argument per wire field, in wire order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        parent: Hash,
        height: Height,
        timestamp_ms: u64,
        proposer: PublicKey,
        state_root: Hash,
        receipts_root: Hash,
        seed: Option<Seed>,
        transactions: Vec<Transaction>,
    ) -> Self {
        let mut block = Self {
            parent,
            height,
            timestamp_ms,
            proposer,
            state_root,
            receipts_root,
            seed,
            transactions,
            digest: Hash::from([0u8; 32]),
        };
        block.digest = block.header().digest();
        block
    }

    /// The genesis block of a network: height 0, no parent, no transactions.
    pub fn genesis(
        chain_id: &logos_primitives::ChainId,
        timestamp_ms: u64,
        proposer: PublicKey,
    ) -> Self {
        Self::new(
            Hash::from([0u8; 32]),
            Height::zero(),
            timestamp_ms,
            proposer,
            chain_id.0,
            crate::receipt::receipts_root(&[]),
            None,
            Vec::new(),
        )
    }

    /// The block's header: what its digest commits to, with the transactions as their root.
    pub fn header(&self) -> BlockHeader {
        BlockHeader {
            parent: self.parent,
            height: self.height,
            timestamp_ms: self.timestamp_ms,
            proposer: self.proposer.clone(),
            state_root: self.state_root,
            transactions_root: transactions_root(&self.transactions),
            receipts_root: self.receipts_root,
            randomness: self.randomness(),
        }
    }

    /// The block's randomness: `SHA-256(seed)`, or the parent's digest without a seed.
    pub fn randomness(&self) -> Hash {
        self.seed
            .as_ref()
            .map_or(self.parent, |seed| seed.randomness())
    }

    /// Encoded size bound for `cfg`.
    pub fn max_size_bytes(cfg: &BlockCfg) -> usize {
        32 + 8
            + 8
            + 32
            + 32
            + 32
            + 1
            + SEED_BYTES
            + 10
            + cfg.max_transactions * TRANSACTION_MAX_BYTES
    }
}

/// `SHA-256(hash(tx_0) | … | hash(tx_n))`: the transactions' commitment in a block digest.
pub fn transactions_root(transactions: &[Transaction]) -> Hash {
    let mut hasher = Sha256::default();
    for transaction in transactions {
        hasher.update(transaction.hash().as_ref());
    }
    let (_, root) = hasher.finalize();
    root
}

/// A block without its transactions: enough to recompute the block's digest, so a light
/// client checks a finalization certificate and a state root without trusting the server.
///
/// Wire form (208 bytes): `parent (32) | height u64 (8) | timestamp_ms u64 (8) | proposer (32)
/// | state_root (32) | transactions_root (32) | receipts_root (32) | randomness (32)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Digest of the parent block.
    pub parent: Hash,
    /// Height.
    pub height: Height,
    /// Proposer's clock, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The proposer.
    pub proposer: PublicKey,
    /// Authenticated state root after the block.
    pub state_root: Hash,
    /// [`transactions_root`] of the block's transactions.
    pub transactions_root: Hash,
    /// Root of the block's receipts ([`crate::receipt`]).
    pub receipts_root: Hash,
    /// The block's randomness ([`Block::randomness`]).
    pub randomness: Hash,
}

impl BlockHeader {
    /// The block digest (see the module docs): what finalization certificates sign.
    pub fn digest(&self) -> Hash {
        Sha256::hash(&[
            self.parent.as_ref(),
            &self.height.get().to_be_bytes(),
            &self.timestamp_ms.to_be_bytes(),
            self.proposer.as_ref(),
            self.state_root.as_ref(),
            self.transactions_root.as_ref(),
            self.receipts_root.as_ref(),
            self.randomness.as_ref(),
        ])
    }
}

impl Write for BlockHeader {
    fn write(&self, buf: &mut impl BufMut) {
        self.parent.write(buf);
        self.height.get().write(buf);
        self.timestamp_ms.write(buf);
        self.proposer.write(buf);
        self.state_root.write(buf);
        self.transactions_root.write(buf);
        self.receipts_root.write(buf);
        self.randomness.write(buf);
    }
}

impl commonware_codec::FixedSize for BlockHeader {
    const SIZE: usize = 32 + 8 + 8 + 32 + 32 + 32 + 32 + 32;
}

impl Read for BlockHeader {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            parent: Hash::read(buf)?,
            height: Height::new(u64::read(buf)?),
            timestamp_ms: u64::read(buf)?,
            proposer: PublicKey::read(buf)?,
            state_root: Hash::read(buf)?,
            transactions_root: Hash::read(buf)?,
            receipts_root: Hash::read(buf)?,
            randomness: Hash::read(buf)?,
        })
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.parent.write(buf);
        self.height.get().write(buf);
        self.timestamp_ms.write(buf);
        self.proposer.write(buf);
        self.state_root.write(buf);
        self.receipts_root.write(buf);
        self.seed.write(buf);
        self.transactions.write(buf);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.parent.encode_size()
            + 16
            + self.proposer.encode_size()
            + self.state_root.encode_size()
            + self.receipts_root.encode_size()
            + self.seed.encode_size()
            + self.transactions.encode_size()
    }
}

impl Read for Block {
    type Cfg = BlockCfg;

    fn read_cfg(buf: &mut impl Buf, cfg: &BlockCfg) -> Result<Self, CodecError> {
        let parent = Hash::read(buf)?;
        let height = Height::new(u64::read(buf)?);
        let timestamp_ms = u64::read(buf)?;
        let proposer = PublicKey::read(buf)?;
        let state_root = Hash::read(buf)?;
        let receipts_root = Hash::read(buf)?;
        let seed = Option::<Seed>::read(buf)?;
        let transactions =
            Vec::<Transaction>::read_cfg(buf, &(RangeCfg::new(0..=cfg.max_transactions), ()))?;
        Ok(Self::new(
            parent,
            height,
            timestamp_ms,
            proposer,
            state_root,
            receipts_root,
            seed,
            transactions,
        ))
    }
}

impl Digestible for Block {
    type Digest = Hash;

    fn digest(&self) -> Hash {
        self.digest
    }
}

impl commonware_consensus::Heightable for Block {
    fn height(&self) -> Height {
        self.height
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Hash {
        self.parent
    }
}

impl commonware_consensus::BoundedBlock for Block {
    fn max_encode_size(cfg: &BlockCfg) -> usize {
        Self::max_size_bytes(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{Decode, Encode};
    use commonware_cryptography::Signer;
    use logos_primitives::{Address, Amount, ChainId, PrivateKey};
    use logos_types::{balances, Call, TransactionPayload};

    fn block(transactions: usize) -> Block {
        let key = PrivateKey::from_seed(3);
        let chain_id = ChainId(logos_primitives::hash(&[b"x"]));
        let transactions = (0..transactions as u64)
            .map(|nonce| {
                TransactionPayload {
                    chain_id,
                    sender: key.public_key(),
                    nonce,
                    fee: Amount(1),
                    call: Call::Balances(balances::Call::Transfer {
                        to: Address([1; 20]),
                        amount: Amount(2),
                    }),
                }
                .sign(&key)
            })
            .collect();
        Block::new(
            Hash::from([7; 32]),
            Height::new(5),
            99,
            key.public_key(),
            Hash::from([8; 32]),
            Hash::from([6; 32]),
            None,
            transactions,
        )
    }

    #[test]
    fn block_round_trips_with_same_digest() {
        let original = block(3);
        let cfg = BlockCfg {
            max_transactions: 10,
        };
        let decoded = Block::decode_cfg(original.encode(), &cfg).unwrap();
        assert_eq!(decoded, original);
        assert_eq!(decoded.digest(), original.digest());
        assert!(original.encode().len() <= Block::max_size_bytes(&cfg));
    }

    #[test]
    fn block_over_the_transaction_bound_is_rejected() {
        let cfg = BlockCfg {
            max_transactions: 2,
        };
        assert!(Block::decode_cfg(block(3).encode(), &cfg).is_err());
    }

    #[test]
    fn digest_commits_to_transactions() {
        assert_ne!(block(1).digest(), block(2).digest());
    }

    #[test]
    fn digest_and_header_commit_to_the_receipts_root() {
        let honest = block(1);
        let mut header = honest.header();
        assert_eq!(header.digest(), honest.digest());
        assert_eq!(header.encode().len(), 208);
        header.receipts_root = Hash::from([5; 32]);
        assert_ne!(header.digest(), honest.digest());
        let forged = Block::new(
            honest.parent,
            honest.height,
            honest.timestamp_ms,
            honest.proposer.clone(),
            honest.state_root,
            Hash::from([5; 32]),
            None,
            honest.transactions.clone(),
        );
        assert_ne!(forged.digest(), honest.digest());
    }

    #[test]
    fn digest_and_header_commit_to_the_seed() {
        let unseeded = block(1);
        assert_eq!(unseeded.randomness(), unseeded.parent);
        let seeded = |byte: u8| {
            Block::new(
                unseeded.parent,
                unseeded.height,
                unseeded.timestamp_ms,
                unseeded.proposer.clone(),
                unseeded.state_root,
                unseeded.receipts_root,
                Some(Seed([byte; SEED_BYTES])),
                unseeded.transactions.clone(),
            )
        };
        let (one, two) = (seeded(1), seeded(2));
        assert_eq!(
            one.randomness(),
            logos_primitives::hash(&[&[1u8; SEED_BYTES]])
        );
        assert_ne!(one.digest(), two.digest());
        assert_ne!(one.digest(), unseeded.digest());
        assert_eq!(one.header().digest(), one.digest());
        let cfg = BlockCfg {
            max_transactions: 10,
        };
        let decoded = Block::decode_cfg(one.encode(), &cfg).unwrap();
        assert_eq!(decoded, one);
        assert!(one.encode().len() <= Block::max_size_bytes(&cfg));
        // A seed cut short, or a flag that is neither 0 nor 1, does not decode.
        let mut bytes = one.encode().to_vec();
        let flag_at = 32 + 8 + 8 + 32 + 32 + 32;
        bytes[flag_at] = 2;
        assert!(Block::decode_cfg(commonware_codec::Copying(&bytes[..]), &cfg).is_err());
        let unseeded_bytes = unseeded.encode();
        assert!(Block::decode_cfg(
            commonware_codec::Copying(&unseeded_bytes[..flag_at + 1]),
            &cfg
        )
        .is_err());
    }
}
