//! Epochs as consensus sees them: the heights each epoch spans, the committee that signs its
//! certificates, and the keys that may speak on the consensus channels.
//!
//! The chain fixes all three (`logos_types::staking`): epoch 0 spans the genesis block (height
//! 0) to its last height; each later epoch starts after the previous one's last block, with the
//! length in force when it started; the committee of epoch `e + 2` is elected at the end of
//! epoch `e`, so at any tip the committees of the current and the next epoch are known. A node
//! learns an epoch when it executes the block that starts it ([`Epochs::learn`], from
//! [`read_epoch_state`] at its finalized tip); it answers nothing about epochs it has not
//! reached. Marshal then neither credits nor blames a certificate of an unknown epoch (it is
//! ignored until the node has executed far enough to check it), and simplex never runs in one.
//!
//! [`Epochs`] is commonware's [`Epocher`] (heights of an epoch, for marshal and the boundary
//! re-proposals of `Inline`) and its certificate [`Provider`] (a signing scheme for epochs whose
//! committee holds this node's key, a verifier otherwise), and it lists the consensus peers:
//! the members of the previous, current and next committees (late votes of the last epoch and
//! early connections of the next one are let through; what anyone else sends on a consensus
//! channel is dropped unread).
//!
//! Bounds: the spans of the last [`EPOCHS_KEPT`] epochs and the schemes of the last
//! [`SCHEMES_KEPT`] epochs (the previous, the current, the next and one more for a node that
//! crossed two boundaries between two reads).

use crate::{
    chain::{ChainError, ChainState},
    shared::Shared,
};
use commonware_consensus::types::{Epoch, EpochInfo as Span, Epocher, Height};
use commonware_cryptography::certificate::{Provider, Scoped};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use logos_api::consensus::{participants, Scheme};
use logos_primitives::{PrivateKey, PublicKey};
use logos_types::{
    codec::decode,
    staking::{Committee, Committees, CurrentEpoch, EpochInfo},
    StorageItem, StorageMap, StorageValue,
};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

/// Epochs whose heights are remembered.
pub const EPOCHS_KEPT: usize = 16;
/// Epochs whose committee schemes are kept.
pub const SCHEMES_KEPT: usize = 4;

/// What the chain says of epochs at one finalized tip (see [`read_epoch_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochState {
    /// The tip's height.
    pub height: u64,
    /// The current epoch.
    pub current: EpochInfo,
    /// Consensus keys of the committees of the previous (if any), current and next epochs,
    /// by epoch number.
    pub committees: BTreeMap<u64, Vec<PublicKey>>,
    /// The same members' on-chain p2p addresses, in the same order.
    pub addresses: BTreeMap<u64, Vec<SocketAddr>>,
}

impl EpochState {
    /// The committee of `epoch`, if this state holds it.
    pub fn committee(&self, epoch: u64) -> Option<&[PublicKey]> {
        self.committees.get(&epoch).map(Vec::as_slice)
    }
}

/// Reads the current epoch and the committees around it at the finalized tip (one lock, so the
/// reads see one state).
pub async fn read_epoch_state<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
) -> Result<EpochState, ChainError> {
    epoch_state(&*shared.chain().await).await
}

/// [`read_epoch_state`] on `chain` itself (the RPC follower's own state).
pub async fn epoch_state<E: Storage + Clock + Metrics + Spawner>(
    chain: &ChainState<E>,
) -> Result<EpochState, ChainError> {
    let tip = chain.tip().clone();
    let current = match chain.read(&tip.digest, &CurrentEpoch::key()).await? {
        Some(bytes) => decode_item::<CurrentEpoch>(&bytes)?,
        None => CurrentEpoch::default_value(),
    };
    let epoch = current.epoch.get();
    let (mut committees, mut addresses) = (BTreeMap::new(), BTreeMap::new());
    for number in [epoch.checked_sub(1), Some(epoch), epoch.checked_add(1)]
        .into_iter()
        .flatten()
    {
        let key = Committees::key(&logos_types::staking::Epoch(number));
        if let Some(bytes) = chain.read(&tip.digest, &key).await? {
            let committee: Committee = decode(&bytes).map_err(storage)?;
            committees.insert(number, consensus_keys(&committee)?);
            let members = committee.members.iter();
            addresses.insert(
                number,
                members.map(|m| m.p2p_address.socket_address()).collect(),
            );
        }
    }
    Ok(EpochState {
        height: tip.height.get(),
        current,
        committees,
        addresses,
    })
}

fn storage(error: impl std::fmt::Display) -> ChainError {
    ChainError::Storage(error.to_string())
}

fn decode_item<I: StorageItem>(bytes: &[u8]) -> Result<I::Value, ChainError> {
    decode(bytes).map_err(storage)
}

/// The members' consensus keys (the chain checked each when it was declared).
fn consensus_keys(committee: &Committee) -> Result<Vec<PublicKey>, ChainError> {
    committee.consensus_keys().map_err(storage)
}

/// The epochs a node knows (see the module docs). Clones share one table.
#[derive(Clone)]
pub struct Epochs {
    inner: Arc<RwLock<Inner>>,
    namespace: Arc<Vec<u8>>,
    signer: PrivateKey,
}

#[derive(Default)]
struct Inner {
    /// First and last height by epoch.
    spans: BTreeMap<u64, (u64, u64)>,
    /// Committee scheme by epoch, whether this node signs in it, and its keys ascending.
    schemes: BTreeMap<u64, (Arc<Scheme>, bool, Vec<PublicKey>)>,
    /// Members of the previous, current and next committees, ascending.
    peers: Vec<PublicKey>,
    /// The newest epoch learned.
    current: Option<u64>,
}

impl Epochs {
    /// An empty table for the chain of `namespace` (its consensus namespace); `signer` is this
    /// node's key (it signs in epochs whose committee holds it).
    pub fn new(namespace: Vec<u8>, signer: PrivateKey) -> Self {
        Self {
            inner: Arc::default(),
            namespace: Arc::new(namespace),
            signer,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes what `state` says: the current epoch's span (and the previous one's end), the
    /// committees' schemes and the consensus peers. A state older than one already learned
    /// changes nothing. Returns true if the current epoch changed.
    pub fn learn(&self, state: &EpochState) -> bool {
        let epoch = state.current.epoch.get();
        let mut inner = self.write();
        if inner.current.is_some_and(|known| known > epoch) {
            return false;
        }
        let changed = inner.current != Some(epoch);
        inner.current = Some(epoch);
        // Epoch 0 also holds the genesis block.
        let first = if epoch == 0 {
            0
        } else {
            state.current.start_height
        };
        let last = state.current.last_height().unwrap_or(u64::MAX);
        inner.spans.insert(epoch, (first, last));
        if let Some(previous) = epoch.checked_sub(1) {
            let end = first.saturating_sub(1);
            let start = inner.spans.get(&previous).map(|(start, _)| *start);
            // An unknown start: the previous epoch is only known to end there (heights below
            // are finalized and processed, nothing asks for them).
            inner
                .spans
                .insert(previous, (start.unwrap_or(end.min(first)), end));
        }
        while inner.spans.len() > EPOCHS_KEPT {
            inner.spans.pop_first();
        }
        let me = commonware_cryptography::Signer::public_key(&self.signer);
        let mut peers = Vec::new();
        for (number, keys) in &state.committees {
            // A committee can still shrink before its epoch (a slashed member is unseated).
            let mut sorted = keys.clone();
            sorted.sort();
            if inner.schemes.get(number).map(|(_, _, known)| known) != Some(&sorted) {
                let (scheme, signs) = self.scheme(keys, &me);
                inner.schemes.insert(*number, (scheme, signs, sorted));
            }
            peers.extend(keys.iter().cloned());
        }
        while inner.schemes.len() > SCHEMES_KEPT {
            inner.schemes.pop_first();
        }
        peers.sort();
        peers.dedup();
        inner.peers = peers;
        changed
    }

    fn scheme(&self, keys: &[PublicKey], me: &PublicKey) -> (Arc<Scheme>, bool) {
        let set = participants(keys);
        if keys.contains(me) {
            if let Some(scheme) = Scheme::signer(&self.namespace, set.clone(), self.signer.clone())
            {
                return (Arc::new(scheme), true);
            }
        }
        (Arc::new(Scheme::verifier(&self.namespace, set)), false)
    }

    /// The newest epoch learned.
    pub fn current(&self) -> Option<u64> {
        self.read().current
    }

    /// True if this node signs in `epoch` (its key is in that committee).
    pub fn is_member(&self, epoch: u64) -> bool {
        self.read()
            .schemes
            .get(&epoch)
            .is_some_and(|(_, signs, _)| *signs)
    }

    /// The committee of `epoch` in simplex's participant order (ascending keys), if kept.
    pub fn committee(&self, epoch: u64) -> Option<Vec<PublicKey>> {
        self.read()
            .schemes
            .get(&epoch)
            .map(|(_, _, keys)| keys.clone())
    }

    /// The consensus peers, ascending (see the module docs).
    pub fn peers(&self) -> Vec<PublicKey> {
        self.read().peers.clone()
    }

    /// True if `key` is a consensus peer.
    pub fn is_peer(&self, key: &PublicKey) -> bool {
        self.read().peers.binary_search(key).is_ok()
    }
}

impl Epocher for Epochs {
    fn containing(&self, height: Height) -> Option<Span> {
        let inner = self.read();
        let (epoch, (first, last)) = inner
            .spans
            .iter()
            .find(|(_, (first, last))| (*first..=*last).contains(&height.get()))?;
        Some(Span::new(
            Epoch::new(*epoch),
            height,
            Height::new(*first),
            Height::new(*last),
        ))
    }

    fn first(&self, epoch: Epoch) -> Option<Height> {
        self.read()
            .spans
            .get(&epoch.get())
            .map(|(first, _)| Height::new(*first))
    }

    fn last(&self, epoch: Epoch) -> Option<Height> {
        self.read()
            .spans
            .get(&epoch.get())
            .map(|(_, last)| Height::new(*last))
    }
}

impl Provider for Epochs {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, scope: Epoch) -> Option<Scoped<Scheme>> {
        let inner = self.read();
        let (scheme, signs, _) = inner.schemes.get(&scope.get())?;
        Some(match signs {
            true => Scoped::scheme(scheme.clone()),
            false => Scoped::verifier(scheme.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use logos_types::staking::Epoch as ChainEpoch;

    fn keys(seeds: std::ops::Range<u64>) -> Vec<PrivateKey> {
        seeds.map(PrivateKey::from_seed).collect()
    }

    fn state(
        epoch: u64,
        start: u64,
        length: u64,
        committees: &[(u64, &[PrivateKey])],
    ) -> EpochState {
        EpochState {
            height: start.saturating_sub(1),
            current: EpochInfo {
                epoch: ChainEpoch(epoch),
                start_height: start,
                length_blocks: length,
            },
            committees: committees
                .iter()
                .map(|(epoch, keys)| (*epoch, keys.iter().map(|k| k.public_key()).collect()))
                .collect(),
            addresses: BTreeMap::new(),
        }
    }

    #[test]
    fn spans_follow_the_chain_and_epoch_zero_holds_genesis() {
        let committee = keys(0..4);
        let epochs = Epochs::new(b"ns".to_vec(), committee[0].clone());
        assert!(epochs.learn(&state(0, 1, 10, &[(0, &committee), (1, &committee)])));
        assert_eq!(epochs.first(Epoch::new(0)), Some(Height::new(0)));
        assert_eq!(epochs.last(Epoch::new(0)), Some(Height::new(10)));
        assert_eq!(
            epochs.containing(Height::new(11)),
            None,
            "epoch 1 not reached"
        );
        // Epoch 1 started at 11 with a longer length (changed by governance).
        assert!(epochs.learn(&state(1, 11, 25, &[(0, &committee), (1, &committee)])));
        let span = epochs.containing(Height::new(35)).unwrap();
        assert_eq!(
            (span.epoch(), span.first(), span.last()),
            (Epoch::new(1), Height::new(11), Height::new(35))
        );
        assert_eq!(
            epochs.containing(Height::new(10)).unwrap().epoch(),
            Epoch::new(0)
        );
        assert_eq!(epochs.containing(Height::new(36)), None);
        // A stale read changes nothing.
        assert!(!epochs.learn(&state(0, 1, 10, &[])));
        assert_eq!(epochs.current(), Some(1));
    }

    #[test]
    fn schemes_sign_only_where_this_key_is_a_member_and_stay_bounded() {
        let all = keys(0..8);
        let (old, new) = (&all[0..4], &all[4..8]);
        let epochs = Epochs::new(b"ns".to_vec(), all[0].clone());
        epochs.learn(&state(0, 1, 10, &[(0, old), (1, new)]));
        assert!(epochs.is_member(0));
        assert!(!epochs.is_member(1));
        assert!(epochs
            .scoped(Epoch::new(0))
            .unwrap()
            .into_scheme()
            .is_some());
        assert!(epochs
            .scoped(Epoch::new(1))
            .unwrap()
            .into_scheme()
            .is_none());
        assert!(epochs.scoped(Epoch::new(2)).is_none());
        assert!(epochs.is_peer(&all[7].public_key()));
        assert!(!epochs.is_peer(&PrivateKey::from_seed(99).public_key()));
        for epoch in 1..20 {
            epochs.learn(&state(
                epoch,
                epoch * 10 + 1,
                10,
                &[(epoch - 1, new), (epoch, new), (epoch + 1, new)],
            ));
        }
        assert!(epochs.read().schemes.len() <= SCHEMES_KEPT);
        assert!(epochs.read().spans.len() <= EPOCHS_KEPT);
        assert!(
            epochs.scoped(Epoch::new(0)).is_none(),
            "old schemes dropped"
        );
        assert!(
            !epochs.is_peer(&all[0].public_key()),
            "the old committee left the peers"
        );
    }

    #[test]
    fn a_committee_that_shrinks_before_its_epoch_is_read_again() {
        let all = keys(0..5);
        let epochs = Epochs::new(b"ns".to_vec(), all[4].clone());
        epochs.learn(&state(0, 1, 10, &[(0, &all), (1, &all)]));
        assert!(epochs.is_member(1));
        // Member 4 is slashed and unseated from epoch 1 during epoch 0.
        epochs.learn(&state(0, 1, 10, &[(0, &all), (1, &all[..4])]));
        assert!(!epochs.is_member(1));
        assert_eq!(epochs.committee(1).unwrap().len(), 4);
    }
}
