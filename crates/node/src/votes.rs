//! A validator records its finalize votes for the chain's vote samples
//! (`staking::RecordVotes`; see "Missed votes" in `logos_types::staking`), so that the chain
//! can tell who voted and cut the rewards of members who did not.
//!
//! After each finalized block the recorder reads the open samples from the finalized state.
//! For each open sample that does not yet show this node's vote, it takes the finalization
//! certificate its marshal holds for the sampled height. If that certificate carries its vote,
//! or if nobody has recorded anything for the sample yet, it submits the certificate. Otherwise
//! it signs its own finalize vote for the finalized proposal and submits that vote. Either way
//! it is one transaction per sample at most, from this validator's account (the fee is its
//! cost of being counted). A sample is tried once (the last [`TRIED_MAX`] are remembered);
//! marshal may lack a certificate, for a block finalized through a descendant, and such a
//! sample is left alone.

use crate::{engine::MarshalMailbox, epochs::Epochs, relay, shared::Shared};
use commonware_codec::Encode;
use commonware_consensus::{simplex::types::Finalize, Epochable as _};
use commonware_cryptography::Signer;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use logos_api::consensus::{participants, Scheme};
use logos_primitives::{Address, Height, PrivateKey, PublicKey};
use logos_types::{
    staking::{self, CurrentEpoch, OpenSamples, VoteKind, VoteSample},
    Call, StorageItem, StorageValue, TransactionPayload,
};
use std::{collections::VecDeque, sync::Arc};
use tracing::{debug, warn};

/// Samples remembered as tried.
pub const TRIED_MAX: usize = 64;

/// Records this validator's votes until the node stops (see the module docs).
pub async fn record<E: Storage + Clock + Metrics + Spawner>(
    shared: Arc<Shared<E>>,
    relay: relay::Mailbox,
    marshal: MarshalMailbox,
    key: PrivateKey,
    epochs: Epochs,
) {
    let mut finalized = shared.subscribe();
    let mut tried: VecDeque<u64> = VecDeque::new();
    loop {
        match finalized.recv().await {
            Ok(_) => {}
            // Behind by some blocks: the state read below is the latest anyway.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        let Some((epoch, open)) = open_samples(&shared).await else {
            continue;
        };
        let Some(mut committee) = epochs.committee(epoch) else {
            continue;
        };
        committee.sort();
        let Some(me) = committee
            .iter()
            .position(|member| *member == key.public_key())
        else {
            continue;
        };
        for sample in open {
            if sample.has(me) || tried.contains(&sample.height) {
                continue;
            }
            if tried.len() >= TRIED_MAX {
                tried.pop_front();
            }
            tried.push_back(sample.height);
            let Some(call) =
                votes_for(&marshal, &sample, epoch, me, &committee, &shared, &key).await
            else {
                continue;
            };
            submit(&shared, &relay, &key, call).await;
        }
    }
}

/// The current epoch and its open samples, from the finalized state.
async fn open_samples<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
) -> Option<(u64, Vec<VoteSample>)> {
    let chain = shared.chain().await;
    let tip = chain.tip().digest;
    let read = |key: logos_types::StorageKey| {
        let chain = &chain;
        async move { chain.read(&tip, &key).await.ok().flatten() }
    };
    let epoch = match read(CurrentEpoch::key()).await {
        Some(bytes) => CurrentEpoch::decode_value(&CurrentEpoch::key(), &bytes).ok()?,
        None => CurrentEpoch::default_value(),
    };
    let open = match read(OpenSamples::key()).await {
        Some(bytes) => OpenSamples::decode_value(&OpenSamples::key(), &bytes).ok()?,
        None => return None,
    };
    Some((epoch.epoch.0, open.to_vec()))
}

/// What to submit for `sample`: marshal's certificate when it carries this node's vote (or
/// nothing is recorded yet), else this node's own finalize vote for the finalized proposal.
async fn votes_for<E: Storage + Clock + Metrics + Spawner>(
    marshal: &MarshalMailbox,
    sample: &VoteSample,
    epoch: u64,
    me: usize,
    committee: &[PublicKey],
    shared: &Shared<E>,
    key: &PrivateKey,
) -> Option<staking::Call> {
    let certificate = marshal.get_finalization(Height::new(sample.height)).await?;
    if certificate.proposal.payload != sample.digest || certificate.epoch().get() != epoch {
        return None;
    }
    let carries_me = certificate
        .certificate
        .signers
        .iter()
        .any(|signer| usize::try_from(signer.get()).ok() == Some(me));
    let nothing_recorded = sample.signed.iter().all(|byte| *byte == 0);
    let (kind, bytes) = if carries_me || nothing_recorded {
        (VoteKind::Certificate, certificate.encode().to_vec())
    } else {
        let namespace = shared.chain_id().consensus_namespace();
        let scheme = Scheme::signer(&namespace, participants(committee), key.clone())?;
        let vote = Finalize::sign(&scheme, certificate.proposal.clone())?;
        (VoteKind::Vote, vote.encode().to_vec())
    };
    let evidence = bytes.try_into().ok()?;
    Some(staking::Call::RecordVotes { kind, evidence })
}

async fn submit<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
    relay: &relay::Mailbox,
    key: &PrivateKey,
    call: staking::Call,
) {
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
    match shared.admit(transaction.clone()).await {
        Ok(hash) => {
            debug!(%hash, "votes recorded");
            relay.relay(transaction);
        }
        Err(rejection) => warn!(%rejection, "vote record not admitted"),
    }
}
