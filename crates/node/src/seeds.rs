//! The seed every block carries: the committee's threshold BLS signature of its parent's height
//! (module `beacon`; the rule is [`logos_beacon::check_seed`]).
//!
//! A member of epoch `e`'s committee holds a share of `e`'s group key (derived by
//! [`crate::dkg`]). Once it knows a block at height `x` whose state puts its child in `e` (it
//! verified, proposed or executed as an ancestor that block, saw it finalized, or holds it when
//! another member's partial of `x` arrives), it signs `x` with its share
//! ([`logos_beacon::seed_message`]) and sends the partial signature to the consensus peers on the
//! seed channel ([`crate::engine::channels::SEEDS`]); again every [`RESEND_INTERVAL_MS`] while
//! it has not recovered the seed (or `x` is the highest height it signed), and every
//! [`FULL_RESEND_INTERVAL_MS`] until a child of `x` is finalized. Anyone holding a quorum of
//! partials of `(x, e)` recovers the signature; it is unique, so the proposer of `x + 1` has
//! nothing to choose: it waits for it (at most its leader timeout) and puts it in the block,
//! whose randomness is its hash. Honest members sign `x` only after a block at `x` exists, so
//! nobody knows the randomness of `x + 1` before a block at `x` was proposed (as with the
//! parent's digest before), and no proposer can grind it. The group key a partial is judged
//! against is the finalized chain's (one taken from an unfinalized block gives way to it).
//!
//! Inbound partials are judged before any curve arithmetic: the message is within its bound, its
//! height is in the window this node keeps ([`HEIGHTS_AHEAD_MAX`] above the finalized tip), its
//! epoch's group key is known here and the sender is the player at the partial's index. Partials
//! are not verified one by one: a quorum is interpolated and the result checked once (one
//! pairing check per height); only if it fails are the partials checked each, and a member
//! whose partial is wrong is ignored for the epoch (partials are deterministic: a wrong one is
//! a lie, not a race). Garbage (a message that does not decode) blocks its sender.
//! [`SeedBook`] is the pure core; [`run`] does the I/O.

use crate::shared::Shared;
use bytes::BufMut;
use commonware_codec::{
    Buf, Copying, DecodeExt as _, Encode as _, EncodeSize, Read, ReadExt as _, Write,
};
use commonware_cryptography::bls12381::primitives::{
    group::Share, ops::threshold, variant::PartialSignature,
};
use commonware_cryptography::Digestible as _;
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{telemetry::metrics::MetricsExt as _, Clock, Metrics, Spawner, Storage};
use commonware_utils::{N3f1, Participant};
use futures::FutureExt as _;
use logos_api::block::{Seed, SEED_BYTES};
use logos_beacon::{seed_message, verify_seed, Bls, GroupOutput, SEED_NAMESPACE};
use logos_primitives::{ChainId, Hash, PublicKey};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

/// Time between two sends of this node's partial for a height not recovered here (or the
/// highest it signed), ms.
pub const RESEND_INTERVAL_MS: u64 = 100;
/// Time between two sends of every partial of this node whose height's child is not
/// finalized, ms.
pub const FULL_RESEND_INTERVAL_MS: u64 = 1_000;
/// Heights above the finalized tip whose partials are kept (a proposal more than this far
/// ahead of this node's finalized tip waits for it to catch up).
pub const HEIGHTS_AHEAD_MAX: u64 = 64;
/// Epochs whose shares and group keys are kept (the previous, the current and the next).
pub const EPOCHS_KEPT: usize = 3;
/// Messages per second each peer may send on the seed channel: one partial per block (about
/// 40 blocks per second at the devnet's pace) and one resend every [`RESEND_INTERVAL_MS`],
/// with room for faster blocks. A message is 69 bytes at most and costs no curve arithmetic
/// unless its header is of use.
pub const MESSAGES_PER_SECOND: u32 = 256;
/// Burst of messages each peer may send on the seed channel.
pub const BURST_MESSAGES: u32 = 512;
/// Largest message on the seed channel, bytes: height (8), epoch (8), the partial's index
/// (varint, at most 5) and signature ([`SEED_BYTES`]).
pub const MESSAGE_MAX_BYTES: usize = 8 + 8 + 5 + SEED_BYTES;
/// Time between two looks for a recovered seed while proposing, ms.
pub const POLL_INTERVAL_MS: u64 = 5;

/// A partial signature of a height by a member of an epoch's committee.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The signed height (the parent of the block that will carry the seed).
    pub height: u64,
    /// The epoch of the child of `height` (whose group key signs it).
    pub epoch: u64,
    /// The member's partial signature.
    pub partial: PartialSignature<Bls>,
}

impl Write for Message {
    fn write(&self, buf: &mut impl BufMut) {
        self.height.write(buf);
        self.epoch.write(buf);
        self.partial.write(buf);
    }
}

impl EncodeSize for Message {
    fn encode_size(&self) -> usize {
        16 + self.partial.encode_size()
    }
}

impl Read for Message {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        Ok(Self {
            height: u64::read(buf)?,
            epoch: u64::read(buf)?,
            partial: PartialSignature::<Bls>::read(buf)?,
        })
    }
}

/// What became of an inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Kept (the seed of its height is not recovered yet).
    Stored,
    /// Completed a quorum: the seed of the height is recovered.
    Recovered(u64),
    /// Dropped: outside the window, of an unknown epoch, not the sender's index, a repeat, or
    /// from an ignored member.
    Ignored,
    /// Does not decode: its sender is blocked.
    Malformed,
}

/// Partials of one height under one epoch's key.
#[derive(Default)]
struct Collected {
    partials: BTreeMap<u32, PartialSignature<Bls>>,
    recovered: Option<Seed>,
    /// This node's partial, encoded, for resends.
    own: Option<Vec<u8>>,
}

/// The seeds this node collects and recovers (pure: see the module docs). Bounded: shares and
/// keys of [`EPOCHS_KEPT`] epochs, partials of heights up to [`HEIGHTS_AHEAD_MAX`] above the
/// tip for known epochs only (each at most one per player), at most that many heights to sign.
pub struct SeedBook {
    chain_id: ChainId,
    tip: u64,
    shares: BTreeMap<u64, Share>,
    keys: BTreeMap<u64, Arc<GroupOutput>>,
    collected: BTreeMap<(u64, u64), Collected>,
    /// Members (epoch, index) whose partial did not verify.
    ignored: BTreeSet<(u64, u32)>,
    /// Blocks known here whose height this node may have to sign: height → digest.
    to_sign: BTreeMap<u64, Hash>,
    /// Heights other members signed and this node did not (it signs them once it knows a
    /// block there: after a restart, a parent verified before the crash).
    wanted: BTreeSet<u64>,
}

impl SeedBook {
    /// An empty book for `chain_id`.
    pub fn new(chain_id: ChainId) -> Self {
        Self {
            chain_id,
            tip: 0,
            shares: BTreeMap::new(),
            keys: BTreeMap::new(),
            collected: BTreeMap::new(),
            ignored: BTreeSet::new(),
            to_sign: BTreeMap::new(),
            wanted: BTreeSet::new(),
        }
    }

    /// The finalized tip moved to `height`: heights below it are no longer needed.
    pub fn set_tip(&mut self, height: u64) {
        self.tip = self.tip.max(height);
        let tip = self.tip;
        self.collected.retain(|(height, _), _| *height >= tip);
        self.to_sign.retain(|height, _| *height >= tip);
        self.wanted.retain(|height| *height >= tip);
    }

    /// Heights other members signed and this node did not (see [`Self::on_message`]); each
    /// stays until it is noted ([`Self::note_block`]) or the tip passes it.
    pub fn wanted(&self) -> Vec<u64> {
        self.wanted.iter().copied().collect()
    }

    fn in_window(&self, height: u64) -> bool {
        height >= self.tip && height <= self.tip.saturating_add(HEIGHTS_AHEAD_MAX)
    }

    /// Keeps `epoch`'s group key as the finalized chain holds it (the newest [`EPOCHS_KEPT`]
    /// epochs). A different key than the one kept (taken from an unfinalized block of a fork)
    /// replaces it, with what was judged against it.
    pub fn add_key(&mut self, epoch: u64, output: Arc<GroupOutput>) {
        if self.keys.get(&epoch).is_some_and(|kept| *kept != output) {
            self.collected.retain(|(_, at), _| *at != epoch);
            self.ignored.retain(|(at, _)| *at != epoch);
        }
        self.keys.insert(epoch, output);
        while self.keys.len() > EPOCHS_KEPT {
            self.keys.pop_first();
        }
        let oldest = self.keys.keys().next().copied().unwrap_or(0);
        self.ignored.retain(|(epoch, _)| *epoch >= oldest);
    }

    /// Keeps `epoch`'s group key as an unfinalized block's state holds it, unless one is kept
    /// already (the finalized chain's, from [`Self::add_key`], takes precedence).
    pub fn add_key_if_absent(&mut self, epoch: u64, output: Arc<GroupOutput>) {
        if !self.keys.contains_key(&epoch) {
            self.add_key(epoch, output);
        }
    }

    /// Keeps this node's share of `epoch`'s group key (the newest [`EPOCHS_KEPT`] epochs).
    pub fn add_share(&mut self, epoch: u64, share: Share) {
        self.shares.insert(epoch, share);
        while self.shares.len() > EPOCHS_KEPT {
            self.shares.pop_first();
        }
    }

    /// True if this node holds a share of `epoch`'s key.
    pub fn has_share(&self, epoch: u64) -> bool {
        self.shares.contains_key(&epoch)
    }

    /// Notes the block `digest` at `height`, known here: its height may be this node's to sign.
    pub fn note_block(&mut self, height: u64, digest: Hash) {
        if self.in_window(height) {
            self.to_sign.insert(height, digest);
            self.wanted.remove(&height);
        }
    }

    /// The blocks noted and not signed yet.
    pub fn unsigned(&self) -> Vec<(u64, Hash)> {
        self.to_sign
            .iter()
            .map(|(height, digest)| (*height, *digest))
            .collect()
    }

    /// Forgets a noted block (signed, or nothing to sign for it).
    pub fn forget_block(&mut self, height: u64) {
        self.to_sign.remove(&height);
    }

    /// The recovered seed of `height` under `epoch`'s key, if any.
    pub fn recovered(&self, height: u64, epoch: u64) -> Option<Seed> {
        self.collected
            .get(&(height, epoch))
            .and_then(|collected| collected.recovered)
    }

    /// Signs `height` with this node's share of `epoch`'s key and returns the message to send
    /// (`None` if signed already, without a share or a key, or outside the window; resends
    /// come from [`Self::resends`]).
    pub fn sign(&mut self, height: u64, epoch: u64) -> Option<Vec<u8>> {
        let share = self.shares.get(&epoch)?;
        if !self.in_window(height) || !self.keys.contains_key(&epoch) {
            return None;
        }
        let signed = self
            .collected
            .get(&(height, epoch))
            .is_some_and(|collected| collected.own.is_some());
        if signed {
            return None;
        }
        let message = seed_message(&self.chain_id, height);
        let partial = threshold::sign_message::<Bls>(share, SEED_NAMESPACE, &message);
        let encoded = Message {
            height,
            epoch,
            partial: partial.clone(),
        }
        .encode()
        .to_vec();
        let collected = self.collected.entry((height, epoch)).or_default();
        collected.partials.insert(partial.index.get(), partial);
        collected.own = Some(encoded.clone());
        self.try_recover(height, epoch);
        Some(encoded)
    }

    /// This node's partials to send again: with `all`, every one of a height not finalized's
    /// child (sent every [`FULL_RESEND_INTERVAL_MS`]: a proposal may fall back to an older
    /// parent after a nullified view); else those of heights not recovered here and of the
    /// highest height it signed (the next proposal's parent, whose proposer may lack it).
    pub fn resends(&self, all: bool) -> Vec<Vec<u8>> {
        let highest = self
            .collected
            .iter()
            .rev()
            .find(|(_, collected)| collected.own.is_some())
            .map(|(key, _)| *key);
        self.collected
            .iter()
            .filter(|(key, collected)| {
                all || collected.recovered.is_none() || Some(**key) == highest
            })
            .filter_map(|(_, collected)| collected.own.clone())
            .collect()
    }

    /// Judges a message from `sender` (see the module docs): its header (height, epoch,
    /// index) first, the signature (a curve point) only if the header is of use.
    pub fn on_message(&mut self, sender: &PublicKey, bytes: &[u8]) -> Verdict {
        if bytes.len() > MESSAGE_MAX_BYTES {
            return Verdict::Malformed;
        }
        let Some((height, epoch, index)) = header(bytes) else {
            return Verdict::Malformed;
        };
        if !self.in_window(height) || self.ignored.contains(&(epoch, index)) {
            return Verdict::Ignored;
        }
        let Some(output) = self.keys.get(&epoch) else {
            return Verdict::Ignored;
        };
        if output.players().position(sender) != usize::try_from(index).ok() {
            return Verdict::Ignored;
        }
        let known = self
            .collected
            .get(&(height, epoch))
            .is_some_and(|collected| {
                collected.recovered.is_some() || collected.partials.contains_key(&index)
            });
        if known {
            return Verdict::Ignored;
        }
        let Ok(message) = Message::decode(Copying(bytes)) else {
            return Verdict::Malformed;
        };
        let collected = self.collected.entry((height, epoch)).or_default();
        if collected.own.is_none() {
            // A member signed it: this node signs it too, once it knows a block there (its
            // share may still be loading or deriving).
            self.wanted.insert(height);
        }
        collected.partials.insert(index, message.partial);
        if self.try_recover(height, epoch) {
            Verdict::Recovered(height)
        } else {
            Verdict::Stored
        }
    }

    /// Recovers the seed of `(height, epoch)` from a quorum of its partials, if there is one;
    /// a quorum that does not give the group's signature has its wrong partials found, dropped
    /// and their members ignored for the epoch. True if recovered now.
    fn try_recover(&mut self, height: u64, epoch: u64) -> bool {
        let Some(output) = self.keys.get(&epoch).cloned() else {
            return false;
        };
        let Some(collected) = self.collected.get_mut(&(height, epoch)) else {
            return false;
        };
        let quorum = output.quorum::<N3f1>() as usize;
        if collected.recovered.is_some() || collected.partials.len() < quorum {
            return false;
        }
        let recovered =
            threshold::recover::<Bls, _>(output.public(), collected.partials.values(), &Sequential);
        if let Ok(signature) = recovered {
            let bytes = signature.encode();
            if verify_seed(&output, &self.chain_id, height, &bytes).is_some() {
                let mut seed = [0u8; SEED_BYTES];
                seed.copy_from_slice(&bytes);
                collected.recovered = Some(Seed(seed));
                return true;
            }
        }
        let message = seed_message(&self.chain_id, height);
        let wrong: Vec<u32> = collected
            .partials
            .values()
            .filter(|partial| {
                threshold::verify_message::<Bls>(output.public(), SEED_NAMESPACE, &message, partial)
                    .is_err()
            })
            .map(|partial| partial.index.get())
            .collect();
        for index in wrong {
            warn!(
                height,
                epoch, index, "wrong seed partial; member ignored for the epoch"
            );
            self.ignored.insert((epoch, index));
            // Its partials of other heights would each cost a failed recovery: dropped unread.
            for ((_, at), collected) in self.collected.iter_mut() {
                if *at == epoch {
                    collected.partials.remove(&index);
                }
            }
        }
        false
    }
}

/// A message's height, epoch and partial index, read without its signature (`None` if they
/// do not decode).
fn header(bytes: &[u8]) -> Option<(u64, u64, u32)> {
    let height = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let epoch = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    let index = Participant::read(&mut Copying(bytes.get(16..)?)).ok()?;
    Some((height, epoch, index.get()))
}

/// Waits until the seed of `height` under `epoch`'s key is recovered here, at most `wait`.
pub async fn wait_for<E: Clock + Storage + Metrics + Spawner>(
    context: &E,
    shared: &Shared<E>,
    height: u64,
    epoch: u64,
    wait: Duration,
) -> Option<Seed> {
    let mut waited = Duration::ZERO;
    loop {
        if let Some(seed) = shared.with_seeds(|book| book.recovered(height, epoch)) {
            return Some(seed);
        }
        if waited >= wait {
            return None;
        }
        let step = Duration::from_millis(POLL_INTERVAL_MS);
        context.sleep(step).await;
        waited = waited.saturating_add(step);
    }
}

/// Signs the heights noted in the book that this node can sign, with the group keys their
/// blocks' states hold (the keys are kept in the book too), and returns the messages to send.
async fn sign_noted<E: Clock + Storage + Metrics + Spawner>(shared: &Shared<E>) -> Vec<Vec<u8>> {
    let wanted = shared.with_seeds(|book| book.wanted());
    if !wanted.is_empty() {
        let chain = shared.chain().await;
        let known: Vec<(u64, Hash)> = wanted
            .into_iter()
            .filter_map(|height| Some((height, chain.block_at(height)?)))
            .collect();
        drop(chain);
        shared.with_seeds(|book| {
            for (height, digest) in known {
                book.note_block(height, digest);
            }
        });
    }
    let noted = shared.with_seeds(|book| book.unsigned());
    let mut messages = Vec::new();
    for (height, digest) in noted {
        let known = shared.chain().await.seed_key(&digest).await;
        let (epoch, key) = match known {
            Ok(found) => found,
            // Pruned past, or not known here: nothing to sign.
            Err(_) => {
                shared.with_seeds(|book| book.forget_block(height));
                continue;
            }
        };
        let Some(key) = key else {
            shared.with_seeds(|book| book.forget_block(height));
            continue;
        };
        let signed = shared.with_seeds(|book| {
            book.add_key_if_absent(epoch, key);
            if !book.has_share(epoch) {
                // Kept: the share may come (the DKG derives it once the key is finalized).
                return None;
            }
            book.forget_block(height);
            book.sign(height, epoch)
        });
        messages.extend(signed);
    }
    messages
}

/// Keeps the group key the finalized block `digest`'s state holds for its child's epoch: it
/// replaces one taken from an unfinalized fork.
async fn adopt_finalized_key<E: Clock + Storage + Metrics + Spawner>(
    shared: &Shared<E>,
    digest: &Hash,
) {
    let found = shared.chain().await.seed_key(digest).await;
    if let Ok((epoch, Some(key))) = found {
        shared.with_seeds(|book| book.add_key(epoch, key));
    }
}

/// Runs the seed task of a validator until the node stops (see the module docs).
pub async fn run<E, S, R, B>(
    context: E,
    shared: Arc<Shared<E>>,
    (mut sender, mut receiver): (S, R),
    mut blocker: B,
) where
    E: Clock + Storage + Metrics + Spawner,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    let recovered = context.counter("seeds_recovered", "block seeds this node recovered");
    let mut finalized = shared.subscribe();
    // After a restart: the finalized tip's height may be this node's to sign.
    let tip = shared.tip().await;
    shared.note_block(tip.height.get(), tip.digest);
    let mut last_resend = context.current();
    let mut last_full_resend = context.current();
    loop {
        let tick = context.sleep(Duration::from_millis(RESEND_INTERVAL_MS));
        let mut sends = futures::select_biased! {
            block = finalized.recv().fuse() => match block {
                Ok(block) => {
                    let (height, digest) = (block.block.height.get(), block.block.digest());
                    shared.with_seeds(|book| {
                        book.set_tip(height);
                        book.note_block(height, digest);
                    });
                    adopt_finalized_key(&shared, &digest).await;
                    sign_noted(&shared).await
                }
                Err(RecvError::Lagged(_)) => {
                    let tip = shared.tip().await;
                    shared.with_seeds(|book| {
                        book.set_tip(tip.height.get());
                        book.note_block(tip.height.get(), tip.digest);
                    });
                    sign_noted(&shared).await
                }
                Err(RecvError::Closed) => return,
            },
            message = receiver.recv().fuse() => match message {
                Ok((peer, bytes)) => {
                    match shared.with_seeds(|book| book.on_message(&peer, bytes.as_ref())) {
                        Verdict::Malformed => {
                            warn!(?peer, "malformed seed message; peer blocked");
                            let _ = blocker.block(peer);
                            Vec::new()
                        }
                        Verdict::Recovered(height) => {
                            recovered.inc();
                            debug!(height, "seed recovered");
                            Vec::new()
                        }
                        Verdict::Stored => sign_noted(&shared).await,
                        Verdict::Ignored => Vec::new(),
                    }
                }
                Err(_) => return,
            },
            _ = shared.seed_work().notified().fuse() => sign_noted(&shared).await,
            _ = tick.fuse() => sign_noted(&shared).await,
        };
        let now = context.current();
        let due = now
            .duration_since(last_resend)
            .is_ok_and(|elapsed| elapsed >= Duration::from_millis(RESEND_INTERVAL_MS));
        if due {
            last_resend = now;
            let all = now
                .duration_since(last_full_resend)
                .is_ok_and(|elapsed| elapsed >= Duration::from_millis(FULL_RESEND_INTERVAL_MS));
            if all {
                last_full_resend = now;
            }
            sends.extend(shared.with_seeds(|book| book.resends(all)));
        }
        for message in sends {
            let _ = sender.send(Recipients::All, message, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{
        bls12381::{dkg::feldman_desmedt::deal, primitives::sharing::Mode},
        Signer as _,
    };
    use commonware_utils::ordered::Set;
    use logos_primitives::{hash, PrivateKey};
    use rand::SeedableRng as _;

    const EPOCH: u64 = 1;

    fn chain_id() -> ChainId {
        ChainId(hash(&[b"seeds"]))
    }

    /// Four members' keys (ascending), the group's output and their shares.
    fn group() -> (Vec<PublicKey>, Arc<GroupOutput>, Vec<Share>) {
        let mut keys: Vec<PublicKey> = (0..4)
            .map(|seed| PrivateKey::from_seed(seed).public_key())
            .collect();
        keys.sort();
        let players = Set::try_from(keys.clone()).unwrap();
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        let (output, shares) =
            deal::<Bls, PublicKey, N3f1>(rng, Mode::NonZeroCounter, players).unwrap();
        let shares = keys
            .iter()
            .map(|key| shares.get_value(key).unwrap().clone())
            .collect();
        (keys, Arc::new(output), shares)
    }

    fn book(output: &Arc<GroupOutput>, share: Option<&Share>) -> SeedBook {
        let mut book = SeedBook::new(chain_id());
        book.set_tip(10);
        book.add_key(EPOCH, output.clone());
        if let Some(share) = share {
            book.add_share(EPOCH, share.clone());
        }
        book
    }

    fn partial(share: &Share, height: u64, epoch: u64) -> Vec<u8> {
        let message = seed_message(&chain_id(), height);
        Message {
            height,
            epoch,
            partial: threshold::sign_message::<Bls>(share, SEED_NAMESPACE, &message),
        }
        .encode()
        .to_vec()
    }

    #[test]
    fn any_quorum_recovers_the_one_seed_of_a_height() {
        let (keys, output, shares) = group();
        let mut first = book(&output, Some(&shares[0]));
        assert!(first.sign(11, EPOCH).is_some());
        assert_eq!(
            first.on_message(&keys[1], &partial(&shares[1], 11, EPOCH)),
            Verdict::Stored
        );
        assert_eq!(
            first.on_message(&keys[2], &partial(&shares[2], 11, EPOCH)),
            Verdict::Recovered(11)
        );
        let seed = first.recovered(11, EPOCH).unwrap();
        assert!(verify_seed(&output, &chain_id(), 11, &seed.0).is_some());
        // Another quorum, without this node's partial: the same seed.
        let mut other = book(&output, None);
        for index in 1..4 {
            other.on_message(&keys[index], &partial(&shares[index], 11, EPOCH));
        }
        assert_eq!(other.recovered(11, EPOCH), Some(seed));
        // Signed once (resends come from `resends`); a later partial changes nothing.
        assert_eq!(first.sign(11, EPOCH), None);
        assert_eq!(first.resends(false).len(), 1);
        assert_eq!(
            first.on_message(&keys[3], &partial(&shares[3], 11, EPOCH)),
            Verdict::Ignored
        );
        // The tip passing the height drops it.
        first.set_tip(12);
        assert_eq!(first.recovered(11, EPOCH), None);
        assert!(first.resends(true).is_empty());
    }

    #[test]
    fn partials_from_outsiders_other_indices_epochs_or_heights_are_dropped_unchecked() {
        let (keys, output, shares) = group();
        let mut book = book(&output, None);
        let stranger = PrivateKey::from_seed(99).public_key();
        let valid = partial(&shares[1], 11, EPOCH);
        // Not a player, or a player sending another's partial.
        assert_eq!(book.on_message(&stranger, &valid), Verdict::Ignored);
        assert_eq!(book.on_message(&keys[2], &valid), Verdict::Ignored);
        // An epoch whose key is not known here; below the tip; beyond the window.
        assert_eq!(
            book.on_message(&keys[1], &partial(&shares[1], 11, EPOCH + 1)),
            Verdict::Ignored
        );
        assert_eq!(
            book.on_message(&keys[1], &partial(&shares[1], 9, EPOCH)),
            Verdict::Ignored
        );
        let far = 10 + HEIGHTS_AHEAD_MAX + 1;
        assert_eq!(
            book.on_message(&keys[1], &partial(&shares[1], far, EPOCH)),
            Verdict::Ignored
        );
        // Once stored, a repeat is dropped.
        assert_eq!(book.on_message(&keys[1], &valid), Verdict::Stored);
        assert_eq!(book.on_message(&keys[1], &valid), Verdict::Ignored);
        // A cut copy of what is stored is dropped unread (its header says it is of no use).
        assert_eq!(
            book.on_message(&keys[1], &valid[..valid.len() - 1]),
            Verdict::Ignored
        );
        // Garbage, a cut message or one over the bound does not decode.
        let fresh = partial(&shares[1], 12, EPOCH);
        assert_eq!(book.on_message(&keys[1], b"garbage"), Verdict::Malformed);
        assert_eq!(
            book.on_message(&keys[1], &fresh[..fresh.len() - 1]),
            Verdict::Malformed
        );
        let mut long = fresh.clone();
        long.resize(MESSAGE_MAX_BYTES + 1, 0);
        assert_eq!(book.on_message(&keys[1], &long), Verdict::Malformed);
        let mut trailing = fresh.clone();
        trailing.push(0);
        assert_eq!(book.on_message(&keys[1], &trailing), Verdict::Malformed);
        // A point that is not on the curve.
        let mut bent = fresh.clone();
        let last = bent.len() - 1;
        bent[last] ^= 0xff;
        bent[17] ^= 0x1f;
        assert_eq!(book.on_message(&keys[1], &bent), Verdict::Malformed);
        assert_eq!(book.on_message(&keys[1], &fresh), Verdict::Stored);
        // No share: nothing to sign.
        assert!(book.sign(11, EPOCH).is_none());
    }

    #[test]
    fn a_wrong_partial_is_found_and_its_member_ignored_for_the_epoch() {
        let (keys, output, shares) = group();
        let mut book = book(&output, None);
        // Member 1 signs another height and sends it as height 11's.
        let mut lie = Message::decode(Copying(&partial(&shares[1], 12, EPOCH)[..])).unwrap();
        lie.height = 11;
        assert_eq!(book.on_message(&keys[1], &lie.encode()), Verdict::Stored);
        assert_eq!(
            book.on_message(&keys[2], &partial(&shares[2], 11, EPOCH)),
            Verdict::Stored
        );
        // The quorum does not give the group's signature: the lie is found and dropped.
        assert_eq!(
            book.on_message(&keys[3], &partial(&shares[3], 11, EPOCH)),
            Verdict::Stored
        );
        assert_eq!(book.recovered(11, EPOCH), None);
        // Member 1 is ignored for the epoch, even with a right partial, and its partials of
        // other heights are gone.
        assert!(book
            .collected
            .values()
            .all(|collected| !collected.partials.contains_key(&1)));
        assert_eq!(
            book.on_message(&keys[1], &partial(&shares[1], 13, EPOCH)),
            Verdict::Ignored
        );
        // An honest fourth completes it.
        assert_eq!(
            book.on_message(&keys[0], &partial(&shares[0], 11, EPOCH)),
            Verdict::Recovered(11)
        );
        let seed = book.recovered(11, EPOCH).unwrap();
        assert!(verify_seed(&output, &chain_id(), 11, &seed.0).is_some());
    }

    #[test]
    fn a_flood_of_partials_stays_within_the_window() {
        let (keys, output, shares) = group();
        let mut book = book(&output, None);
        book.add_key(EPOCH + 1, output.clone());
        book.add_key(EPOCH + 2, output.clone());
        for height in 0..1_000u64 {
            for epoch in [EPOCH, EPOCH + 1, EPOCH + 2, EPOCH + 3, u64::MAX] {
                book.on_message(&keys[1], &partial(&shares[1], height, epoch));
            }
        }
        let window = HEIGHTS_AHEAD_MAX as usize + 1;
        assert_eq!(book.collected.len(), EPOCHS_KEPT * window);
        assert!(book.collected.values().all(|kept| kept.partials.len() == 1));
        // Noted blocks are bounded by the same window.
        for height in 0..1_000u64 {
            book.note_block(height, hash(&[&height.to_be_bytes()]));
        }
        assert!(book.unsigned().len() <= HEIGHTS_AHEAD_MAX as usize + 1);
        // Keys and shares of at most EPOCHS_KEPT epochs.
        for epoch in 0..10 {
            book.add_key(epoch, output.clone());
            book.add_share(epoch, shares[0].clone());
        }
        assert_eq!(book.keys.len(), EPOCHS_KEPT);
        assert_eq!(book.shares.len(), EPOCHS_KEPT);
    }

    #[test]
    fn a_member_signs_a_height_another_signed_once_it_knows_a_block_there() {
        let (keys, output, shares) = group();
        // Its share is not loaded yet: the height stays wanted.
        let mut book = book(&output, None);
        book.on_message(&keys[1], &partial(&shares[1], 11, EPOCH));
        assert_eq!(book.wanted(), vec![11]);
        assert_eq!(book.wanted(), vec![11]);
        // Noting a block there takes it; the tip passing it drops it too.
        book.on_message(&keys[1], &partial(&shares[1], 12, EPOCH));
        book.note_block(11, hash(&[b"eleven"]));
        assert_eq!(book.wanted(), vec![12]);
        book.set_tip(13);
        assert!(book.wanted().is_empty());
    }

    #[test]
    fn a_key_from_a_fork_gives_way_to_the_finalized_one() {
        let (keys, output, shares) = group();
        // Another key for the same players (a fork's DKG).
        let players = Set::try_from(keys.clone()).unwrap();
        let rng = rand::rngs::StdRng::seed_from_u64(8);
        let (fork, _) = deal::<Bls, PublicKey, N3f1>(rng, Mode::NonZeroCounter, players).unwrap();
        let fork = Arc::new(fork);
        let mut book = SeedBook::new(chain_id());
        book.set_tip(10);
        // The fork's key came first (a later unfinalized one does not replace it): the honest
        // partials do not give its signature, so their members are ignored.
        book.add_key_if_absent(EPOCH, fork.clone());
        book.add_key_if_absent(EPOCH, output.clone());
        for index in 1..4 {
            assert_eq!(
                book.on_message(&keys[index], &partial(&shares[index], 11, EPOCH)),
                Verdict::Stored
            );
        }
        assert_eq!(book.recovered(11, EPOCH), None);
        assert_eq!(book.ignored.len(), 3);
        // The finalized key replaces it, with what was judged against it: the partials count.
        book.add_key(EPOCH, output.clone());
        assert!(book.ignored.is_empty());
        for index in 1..3 {
            book.on_message(&keys[index], &partial(&shares[index], 11, EPOCH));
        }
        assert_eq!(
            book.on_message(&keys[3], &partial(&shares[3], 11, EPOCH)),
            Verdict::Recovered(11)
        );
    }
}
