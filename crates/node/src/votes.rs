//! A validator records its finalize votes for the chain's vote samples
//! (`staking::RecordVotes`; see "Missed votes" in `logos_types::staking`), so that the chain
//! can tell who voted and cut the rewards of members who did not.
//!
//! Only votes this node's engine actually sent are recorded, never one signed afterwards: a
//! member that nullified a view and signed a finalize for it later would have made a
//! `NullifyFinalize` fault anyone could report. [`OwnVotes`] wraps the simplex reporter and
//! keeps this node's own `Finalize` votes as the engine emits them (the last
//! [`OWN_VOTES_MAX`]); failing that, the node's vote is taken out of the finalization
//! certificate its marshal holds for the sampled block, if it is there.
//!
//! After each finalized block the recorder reads the open samples from the finalized state,
//! and for each one that does not show this node's vote yet submits that vote alone (about
//! 110 bytes; a certificate of a large committee would not fit a transaction) from the
//! consensus key's account, which pays the fee. A submitted vote is not sent again for
//! [`RETRY_BLOCKS`] blocks; a sample this node has no vote for is left alone.

use crate::{engine::MarshalMailbox, epochs::Epochs, relay, shared::Shared};
use commonware_codec::Encode;
use commonware_consensus::{
    simplex::types::{Activity, Attributable as _, Finalize},
    Epochable as _, Reporter,
};
use commonware_cryptography::{certificate::Attestation, Signer};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use logos_api::consensus::Scheme;
use logos_primitives::{Address, Hash, Height, PrivateKey, PublicKey};
use logos_types::{
    staking::{self, CurrentEpoch, OpenSamples, VoteKind, VoteSample},
    Call, StorageItem, StorageValue, TransactionPayload,
};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};
use tracing::{debug, warn};

/// This node's own finalize votes kept for recording.
pub const OWN_VOTES_MAX: usize = 256;
/// Blocks before a submitted vote that is still not recorded is sent again.
pub const RETRY_BLOCKS: u64 = 8;
/// Blocks between two warnings that a record was not admitted.
pub const WARN_INTERVAL_BLOCKS: u64 = 1_000;

/// This node's finalize votes as its engines sent them (see the module docs). Clones share one
/// buffer.
#[derive(Clone)]
pub struct OwnVoteLog {
    me: PublicKey,
    epochs: Epochs,
    votes: Arc<Mutex<VecDeque<Finalize<Scheme, Hash>>>>,
    /// This node's participant index in the last epoch asked (every peer's vote passes here:
    /// the committee is sorted once per epoch, not once per vote).
    index: Arc<Mutex<Option<KnownIndex>>>,
}

/// An epoch and this node's participant index in it (`None`: not a member).
type KnownIndex = (u64, Option<usize>);

impl OwnVoteLog {
    /// An empty log of the votes of a node with key `me`.
    pub fn new(me: PublicKey, epochs: Epochs) -> Self {
        Self {
            me,
            epochs,
            votes: Arc::default(),
            index: Arc::default(),
        }
    }

    /// This node's participant index in `epoch` (remembered for the last epoch asked, once
    /// its committee is known).
    fn my_index(&self, epoch: u64) -> Option<usize> {
        let mut cached = self.index.lock().expect("own index lock");
        if let Some((known, index)) = *cached {
            if known == epoch {
                return index;
            }
        }
        let index = my_index(&self.epochs, epoch, &self.me);
        if self.epochs.committee(epoch).is_some() {
            *cached = Some((epoch, index));
        }
        index
    }

    /// This node's finalize vote of `epoch` for `digest`, if its engine sent one lately.
    pub fn vote(&self, epoch: u64, digest: &Hash) -> Option<Finalize<Scheme, Hash>> {
        self.votes
            .lock()
            .expect("own votes lock")
            .iter()
            .find(|vote| vote.epoch().get() == epoch && vote.proposal.payload == *digest)
            .cloned()
    }

    /// Keeps `vote` if this node signed it (the last [`OWN_VOTES_MAX`]).
    fn keep(&self, vote: &Finalize<Scheme, Hash>) {
        let mine = self
            .my_index(vote.epoch().get())
            .is_some_and(|me| u64::from(vote.signer().get()) == me as u64);
        if !mine {
            return;
        }
        let mut votes = self.votes.lock().expect("own votes lock");
        if votes.len() >= OWN_VOTES_MAX {
            votes.pop_front();
        }
        votes.push_back(vote.clone());
    }
}

/// A simplex reporter that also keeps this node's own finalize votes in an [`OwnVoteLog`].
#[derive(Clone)]
pub struct OwnVotes<R> {
    inner: R,
    log: OwnVoteLog,
}

impl<R> OwnVotes<R> {
    /// Wraps the reporter `inner`; this node's finalize votes go to `log`.
    pub fn new(inner: R, log: OwnVoteLog) -> Self {
        Self { inner, log }
    }
}

impl<R: Reporter<Activity = Activity<Scheme, Hash>>> Reporter for OwnVotes<R> {
    type Activity = Activity<Scheme, Hash>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        if let Activity::Finalize(vote) = &activity {
            self.log.keep(vote);
        }
        self.inner.report(activity)
    }
}

/// `me`'s participant index in `epoch` (simplex orders participants by key).
fn my_index(epochs: &Epochs, epoch: u64, me: &PublicKey) -> Option<usize> {
    let mut committee = epochs.committee(epoch)?;
    committee.sort();
    committee.iter().position(|member| member == me)
}

/// Records this validator's votes until the node stops (see the module docs).
pub async fn record<E: Storage + Clock + Metrics + Spawner>(
    shared: Arc<Shared<E>>,
    relay: relay::Mailbox,
    marshal: MarshalMailbox,
    key: PrivateKey,
    own: OwnVoteLog,
) {
    let mut finalized = shared.subscribe();
    // Sample height → the height its vote was last submitted at.
    let mut submitted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut warned: Option<u64> = None;
    loop {
        let height = match finalized.recv().await {
            Ok(block) => block.block.height.get(),
            // Behind by some blocks: the state read below is the latest anyway.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                shared.tip().await.height.get()
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some((epoch, open)) = open_samples(&shared).await else {
            continue;
        };
        let Some(me) = my_index(&own.epochs, epoch, &key.public_key()) else {
            continue;
        };
        submitted.retain(|sampled, _| open.iter().any(|sample| sample.height == *sampled));
        for sample in open {
            let recent = submitted
                .get(&sample.height)
                .is_some_and(|at| height < at.saturating_add(RETRY_BLOCKS));
            if sample.has(me) || recent {
                continue;
            }
            let Some(vote) = my_vote(&own, &marshal, &sample, epoch, me).await else {
                continue;
            };
            let Ok(evidence) = vote.encode().to_vec().try_into() else {
                continue;
            };
            let call = staking::Call::RecordVotes {
                kind: VoteKind::Vote,
                evidence,
            };
            // Tried again only after RETRY_BLOCKS, admitted or not (an unfunded account is
            // said once per WARN_INTERVAL_BLOCKS).
            submitted.insert(sample.height, height);
            if let Err(rejection) = submit(&shared, &relay, &key, call).await {
                if warned.is_none_or(|at| height >= at.saturating_add(WARN_INTERVAL_BLOCKS)) {
                    warn!(%rejection, "vote record not admitted (does the consensus key's account hold the fee?)");
                    warned = Some(height);
                }
            }
        }
    }
}

/// The current epoch and its open samples, from the finalized state.
async fn open_samples<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
) -> Option<(u64, Vec<VoteSample>)> {
    let chain = shared.chain().await;
    let tip = chain.tip().digest;
    let epoch = match chain.read(&tip, &CurrentEpoch::key()).await.ok()? {
        Some(bytes) => CurrentEpoch::decode_value(&CurrentEpoch::key(), &bytes).ok()?,
        None => CurrentEpoch::default_value(),
    };
    let bytes = chain.read(&tip, &OpenSamples::key()).await.ok()??;
    let open = OpenSamples::decode_value(&OpenSamples::key(), &bytes).ok()?;
    Some((epoch.epoch.0, open.to_vec()))
}

/// This node's vote for `sample` as its engine sent it: kept by [`OwnVotes`], or taken out of
/// marshal's certificate of the sampled block.
async fn my_vote(
    own: &OwnVoteLog,
    marshal: &MarshalMailbox,
    sample: &VoteSample,
    epoch: u64,
    me: usize,
) -> Option<Finalize<Scheme, Hash>> {
    if let Some(vote) = own.vote(epoch, &sample.digest) {
        return Some(vote);
    }
    let certificate = marshal.get_finalization(Height::new(sample.height)).await?;
    if certificate.proposal.payload != sample.digest || certificate.epoch().get() != epoch {
        return None;
    }
    let position = certificate
        .certificate
        .signers
        .iter()
        .position(|signer| usize::try_from(signer.get()).ok() == Some(me))?;
    let signer = certificate.certificate.signers.iter().nth(position)?;
    let signature = certificate.certificate.signatures.get(position)?.clone();
    Some(Finalize {
        proposal: certificate.proposal,
        attestation: Attestation { signer, signature },
    })
}

/// Admits and relays `call` from `key`'s account.
async fn submit<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
    relay: &relay::Mailbox,
    key: &PrivateKey,
    call: staking::Call,
) -> Result<(), logos_mempool::Rejection> {
    let sender = Address::from_public_key(&key.public_key());
    let nonce = crate::evidence::next_nonce(shared, &sender).await;
    let transaction = TransactionPayload {
        chain_id: shared.chain_id(),
        sender: key.public_key(),
        nonce,
        fee: shared.genesis().params.min_fee,
        call: Call::Staking(call),
    }
    .sign(key);
    let hash = shared.admit(transaction.clone()).await?;
    debug!(%hash, "vote recorded");
    relay.relay(transaction);
    Ok(())
}
