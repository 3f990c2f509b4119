//! A validator's part in each epoch's distributed key generation (module `beacon`; the
//! protocol is in `logos_types::beacon`).
//!
//! While the chain is in epoch `e`, the DKG for epoch `e + 1` runs: its dealers are `e`'s
//! committee, its players `e + 1`'s (as the chain's round records them once a dealing arrived,
//! else as the committees stand). After each finalized block this node:
//! - **as a dealer**, starts its dealing once (the randomness derived from its key, the chain
//!   and the epoch, so a restarted node deals the same), sends each player its commitment and
//!   private share on the DKG channel ([`crate::engine::channels::DKG`]) until the player
//!   acknowledges (every [`RESEND_INTERVAL_MS`]), and when every player has, or half the epoch
//!   has passed, signs its log and submits it in parts from its consensus key's account (fee
//!   paid there). If the finalized state does not show the log complete [`RETRY_BLOCKS`]
//!   later, it submits it again, until the block before the epoch's last;
//! - **as a player**, checks each dealer's share against its commitment and answers with its
//!   acknowledgement (the same one again when a dealer sends again); once the chain stored the
//!   epoch's group key, derives its share from the logs the chain keeps through that epoch
//!   and checks that its output is the chain's.
//!
//! A message is read only from a dealer of this node's player round or a player of its dealer
//! round (anything else is dropped unread), one that does not decode blocks its sender, and a
//! share that does not match its commitment is not acknowledged (the dealer must reveal it).
//! Shares are held in memory only: a restarted player cannot finalize the round it was in,
//! and blocks do not carry a seed signed with them yet (ARCHITECTURE.md, "The beacon").

use crate::{evidence::next_nonce, relay, shared::Shared};
use bytes::BufMut;
use commonware_codec::{
    Buf, Decode as _, Encode as _, EncodeSize, Error as CodecError, Read, ReadExt as _, Write,
};
use commonware_cryptography::{
    bls12381::dkg::feldman_desmedt::{Dealer, DealerPrivMsg, DealerPubMsg, Player, PlayerAck},
    Signer as _,
};
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Metrics, Spawner, Storage,
};
use commonware_utils::N3f1;
use futures::FutureExt as _;
use logos_beacon::{decode_output, round_info, round_logs, round_of, Bls};
use logos_primitives::{hash, Address, NodeKey, PrivateKey, PublicKey};
use logos_types::{
    beacon::{
        self, Dealing, DealingKey, Dealings, GroupKeys, Round, Rounds, DEALING_PART_MAX_BYTES,
    },
    codec::BoundedVec,
    staking::{Committees, CurrentEpoch, Epoch, EpochInfo, COMMITTEE_MAX},
    Call, StorageItem as _, StorageMap, StorageValue as _, TransactionPayload,
};
use rand::SeedableRng as _;
use std::{
    collections::{BTreeMap, BTreeSet},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

/// Time between two sends of a dealing a player has not acknowledged, ms.
pub const RESEND_INTERVAL_MS: u64 = 1_000;
/// Blocks after which a log the finalized state does not show complete is submitted again.
pub const RETRY_BLOCKS: u64 = 8;
/// Domain of the dealer's randomness (hashed with its key, the chain id and the epoch).
const DEALER_SEED_DOMAIN: &[u8] = b"logos-beacon-dealer-v1";

/// A message on the DKG channel. Wire: a tag byte, the epoch (u64), then for `Dealing` the
/// commitment (at most [`COMMITTEE_MAX`] G2 points) and the share (32 bytes), for `Ack` the
/// player's acknowledgement (64 bytes).
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Dealer to player: the commitment and the player's share.
    Dealing {
        /// The epoch the DKG is for.
        epoch: u64,
        /// The dealer's commitment.
        public: DealerPubMsg<Bls>,
        /// The player's share.
        private: DealerPrivMsg,
    },
    /// Player to dealer: the acknowledgement.
    Ack {
        /// The epoch the DKG is for.
        epoch: u64,
        /// The player's signature over the dealer and its commitment.
        ack: PlayerAck<PublicKey>,
    },
}

impl Write for Message {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Dealing {
                epoch,
                public,
                private,
            } => {
                0u8.write(buf);
                epoch.write(buf);
                public.write(buf);
                private.write(buf);
            }
            Self::Ack { epoch, ack } => {
                1u8.write(buf);
                epoch.write(buf);
                ack.write(buf);
            }
        }
    }
}

impl EncodeSize for Message {
    fn encode_size(&self) -> usize {
        1 + 8
            + match self {
                Self::Dealing {
                    public, private, ..
                } => public.encode_size() + private.encode_size(),
                Self::Ack { ack, .. } => ack.encode_size(),
            }
    }
}

impl Read for Message {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let tag = u8::read(buf)?;
        let epoch = u64::read(buf)?;
        match tag {
            0 => {
                let max = NonZeroU32::new(COMMITTEE_MAX as u32).unwrap_or(NonZeroU32::MIN);
                Ok(Self::Dealing {
                    epoch,
                    public: DealerPubMsg::read_cfg(buf, &max)?,
                    private: DealerPrivMsg::read(buf)?,
                })
            }
            1 => Ok(Self::Ack {
                epoch,
                ack: PlayerAck::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// This node's dealing for one epoch.
struct Dealt {
    epoch: u64,
    /// `None` once the log is signed.
    dealer: Option<Dealer<Bls, PrivateKey>>,
    public: DealerPubMsg<Bls>,
    shares: BTreeMap<PublicKey, DealerPrivMsg>,
    acked: BTreeSet<PublicKey>,
    log: Option<Vec<u8>>,
    submitted_at: Option<u64>,
    last_sent: Option<SystemTime>,
}

/// This node's part as a player of one epoch.
struct Playing {
    dealers: BTreeSet<PublicKey>,
    player: Player<Bls, PrivateKey>,
    acks: BTreeMap<PublicKey, PlayerAck<PublicKey>>,
}

/// The DKG task's state (see the module docs).
pub struct Dkg<E> {
    context: E,
    key: PrivateKey,
    me: NodeKey,
    dealt: Option<Dealt>,
    /// By epoch: the next epoch's, and the current one's until its share is derived.
    playing: BTreeMap<u64, Playing>,
    submitted: Counter,
    derived: Counter,
}

/// What the finalized state says of the DKG at the tip.
struct View {
    height: u64,
    current: EpochInfo,
    /// The next epoch's round (the chain's, or from the committees).
    next: Round,
    /// Whether this node's log for the next epoch is complete on chain.
    complete: bool,
}

impl<E: Storage + Clock + Metrics + Spawner + rand::CryptoRng> Dkg<E> {
    /// The task of the validator with consensus key `key`.
    pub fn new(context: E, key: PrivateKey) -> Self {
        let submitted = context.counter(
            "dkg_logs_submitted",
            "dealer logs this node submitted for a DKG",
        );
        let derived = context.counter(
            "dkg_shares_derived",
            "group key shares this node derived from a DKG",
        );
        Self {
            me: NodeKey::from_public_key(&key.public_key()),
            context,
            key,
            dealt: None,
            playing: BTreeMap::new(),
            submitted,
            derived,
        }
    }

    /// Runs until the node stops (see the module docs).
    pub async fn run<S, R, B>(
        mut self,
        shared: Arc<Shared<E>>,
        relay: relay::Mailbox,
        (mut sender, mut receiver): (S, R),
        mut blocker: B,
    ) where
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
        B: Blocker<PublicKey = PublicKey>,
    {
        let mut finalized = shared.subscribe();
        loop {
            let resend = self
                .context
                .sleep(Duration::from_millis(RESEND_INTERVAL_MS));
            futures::select_biased! {
                block = finalized.recv().fuse() => match block {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        self.on_block(&shared, &relay).await;
                        self.resend(&mut sender);
                    }
                    Err(RecvError::Closed) => return,
                },
                message = receiver.recv().fuse() => match message {
                    Ok((peer, bytes)) => self.on_message(peer, bytes, &mut sender, &mut blocker),
                    Err(_) => return,
                },
                _ = resend.fuse() => self.resend(&mut sender),
            }
        }
    }

    /// After a finalized block: starts, closes and submits this node's rounds.
    async fn on_block(&mut self, shared: &Shared<E>, relay: &relay::Mailbox) {
        let Some(view) = self.view(shared).await else {
            return;
        };
        let epoch = view.current.epoch.get();
        let target = epoch.saturating_add(1);
        let chain_id = shared.chain_id();
        if self.dealt.as_ref().map(|dealt| dealt.epoch) != Some(target) {
            self.dealt = self.start_dealing(&chain_id, target, &view.next);
        }
        if !self.playing.contains_key(&target) && view.next.players.contains(&self.me) {
            if let Ok(info) = round_info(&chain_id, Epoch(target), &view.next) {
                if let Ok(player) = Player::new(info.clone(), self.key.clone()) {
                    let dealers = keys(&view.next.dealers);
                    self.playing.insert(
                        target,
                        Playing {
                            dealers,
                            player,
                            acks: BTreeMap::new(),
                        },
                    );
                }
            }
        }
        self.playing.retain(|kept, _| *kept >= epoch);
        self.close_dealing(&view, shared, relay).await;
        self.derive_share(shared, epoch).await;
    }

    /// The finalized state's epoch, next round and this node's log, at the tip.
    async fn view(&self, shared: &Shared<E>) -> Option<View> {
        let chain = shared.chain().await;
        let tip = chain.tip();
        let at = tip.digest;
        let current = match chain.read(&at, &CurrentEpoch::key()).await.ok()? {
            Some(bytes) => CurrentEpoch::decode_value(&CurrentEpoch::key(), &bytes).ok()?,
            None => CurrentEpoch::default_value(),
        };
        let target = current.epoch.next()?;
        let next = match read::<Rounds, E>(&chain, &at, &target).await {
            Some(round) => round,
            None => {
                let dealers = read::<Committees, E>(&chain, &at, &current.epoch).await?;
                let players = read::<Committees, E>(&chain, &at, &target).await?;
                round_of(&dealers, &players)
            }
        };
        let key = DealingKey {
            epoch: target,
            dealer: self.me,
        };
        let complete = read::<Dealings, E>(&chain, &at, &key)
            .await
            .is_some_and(|dealing| dealing.complete);
        Some(View {
            height: tip.height.get(),
            current,
            next,
            complete,
        })
    }

    /// This node's dealing for `epoch` if it deals in `round`.
    fn start_dealing(
        &self,
        chain_id: &logos_primitives::ChainId,
        epoch: u64,
        round: &Round,
    ) -> Option<Dealt> {
        if !round.dealers.contains(&self.me) {
            return None;
        }
        let info = round_info(chain_id, Epoch(epoch), round).ok()?;
        // The same dealing after a restart: players that acknowledged it answer again.
        let seed = hash(&[
            DEALER_SEED_DOMAIN,
            &self.key.encode(),
            &chain_id.encode(),
            &epoch.to_be_bytes(),
        ]);
        let rng = rand::rngs::StdRng::from_seed(seed.0);
        let (dealer, public, shares) = Dealer::start::<N3f1>(rng, info, self.key.clone(), None)
            .inspect_err(|error| warn!(%error, epoch, "DKG dealing not started"))
            .ok()?;
        debug!(epoch, players = shares.len(), "DKG dealing started");
        Some(Dealt {
            epoch,
            dealer: Some(dealer),
            public,
            shares: shares.into_iter().collect(),
            acked: BTreeSet::new(),
            log: None,
            submitted_at: None,
            last_sent: None,
        })
    }

    /// Signs the log once every player acknowledged or half the epoch passed, and submits it
    /// (again if the chain does not show it complete [`RETRY_BLOCKS`] later).
    async fn close_dealing(&mut self, view: &View, shared: &Shared<E>, relay: &relay::Mailbox) {
        let Some(dealt) = self.dealt.as_mut() else {
            return;
        };
        let start = view.current.start_height;
        let half = start.saturating_add(view.current.length_blocks / 2);
        let everyone = dealt.acked.len() == dealt.shares.len();
        if everyone || view.height >= half {
            if let Some(dealer) = dealt.dealer.take() {
                dealt.log = Some(dealer.finalize::<N3f1>().encode().to_vec());
            }
        }
        // Taken only in blocks before the epoch's last: the next block must be one.
        let open = view
            .current
            .last_height()
            .is_some_and(|last| view.height.saturating_add(1) < last);
        let due = dealt
            .submitted_at
            .is_none_or(|at| view.height >= at.saturating_add(RETRY_BLOCKS));
        let Some(log) = dealt.log.clone() else {
            return;
        };
        if view.complete || !open || !due {
            return;
        }
        dealt.submitted_at = Some(view.height);
        let epoch = dealt.epoch;
        match self.submit(shared, relay, epoch, &log).await {
            Ok(()) => {
                self.submitted.inc();
                info!(epoch, size_bytes = log.len(), "DKG log submitted");
            }
            Err(rejection) => {
                warn!(%rejection, epoch, "DKG log not admitted (does the consensus key's account hold the fees?)")
            }
        }
    }

    /// Admits and relays `log` in parts from this node's account.
    async fn submit(
        &self,
        shared: &Shared<E>,
        relay: &relay::Mailbox,
        epoch: u64,
        log: &[u8],
    ) -> Result<(), logos_mempool::Rejection> {
        let sender = Address::from_public_key(&self.key.public_key());
        let chunks: Vec<&[u8]> = log.chunks(DEALING_PART_MAX_BYTES).collect();
        for (index, chunk) in chunks.iter().enumerate() {
            let offset = index.saturating_mul(DEALING_PART_MAX_BYTES);
            let call = beacon::Call::SubmitDealing {
                epoch: Epoch(epoch),
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
                part: BoundedVec::truncated(chunk.to_vec()),
                last: index.saturating_add(1) == chunks.len(),
            };
            let transaction = TransactionPayload {
                chain_id: shared.chain_id(),
                sender: self.key.public_key(),
                nonce: next_nonce(shared, &sender).await,
                fee: shared.genesis().params.min_fee,
                call: Call::Beacon(call),
            }
            .sign(&self.key);
            shared.admit(transaction.clone()).await?;
            relay.relay(transaction);
        }
        Ok(())
    }

    /// Once the chain holds `epoch`'s group key: this node's share, from the logs the chain
    /// keeps, checked against the chain's output.
    async fn derive_share(&mut self, shared: &Shared<E>, epoch: u64) {
        if !self.playing.contains_key(&epoch) {
            return;
        }
        let (stored, complete, round) = {
            let chain = shared.chain().await;
            let at = chain.tip().digest;
            let Some(stored) = read::<GroupKeys, E>(&chain, &at, &Epoch(epoch)).await else {
                return;
            };
            let Some(round) = read::<Rounds, E>(&chain, &at, &Epoch(epoch)).await else {
                return;
            };
            let mut complete: Vec<Dealing> = Vec::new();
            for dealer in round.dealers.iter() {
                let key = DealingKey {
                    epoch: Epoch(epoch),
                    dealer: *dealer,
                };
                if let Some(dealing) = read::<Dealings, E>(&chain, &at, &key).await {
                    complete.push(dealing);
                }
            }
            (stored, complete, round)
        };
        let Some(playing) = self.playing.remove(&epoch) else {
            return;
        };
        let Ok(logs) = round_logs(&shared.chain_id(), Epoch(epoch), &round, &complete) else {
            return;
        };
        match playing
            .player
            .finalize::<N3f1>(&mut self.context, logs, &Sequential)
        {
            Ok((output, _share)) => {
                let theirs = decode_output(&stored).ok();
                if theirs.as_ref() == Some(&output) {
                    self.derived.inc();
                    info!(epoch, "DKG share derived; the group key is the chain's");
                } else {
                    warn!(epoch, "DKG output differs from the chain's group key");
                }
            }
            Err(error) => warn!(%error, epoch, "DKG share not derived"),
        }
    }

    /// Sends each unacknowledged player its share again, at most every
    /// [`RESEND_INTERVAL_MS`].
    fn resend<S: Sender<PublicKey = PublicKey>>(&mut self, sender: &mut S) {
        let now = self.context.current();
        let Some(dealt) = self.dealt.as_mut() else {
            return;
        };
        if dealt.dealer.is_none() {
            return;
        }
        let interval = Duration::from_millis(RESEND_INTERVAL_MS);
        let recent = dealt.last_sent.is_some_and(|sent| {
            now.duration_since(sent)
                .is_ok_and(|elapsed| elapsed < interval)
        });
        if recent {
            return;
        }
        dealt.last_sent = Some(now);
        let outgoing: Vec<(PublicKey, Message)> = dealt
            .shares
            .iter()
            .filter(|(player, _)| !dealt.acked.contains(*player))
            .map(|(player, private)| {
                let message = Message::Dealing {
                    epoch: dealt.epoch,
                    public: dealt.public.clone(),
                    private: private.clone(),
                };
                (player.clone(), message)
            })
            .collect();
        for (player, message) in outgoing {
            if player == self.key.public_key() {
                // To itself: no network.
                self.acknowledge(player, message, sender);
            } else {
                let _ = sender.send(Recipients::One(player), message.encode(), false);
            }
        }
    }

    /// A message from `peer` (see the module docs for what is read).
    fn on_message<S, B>(
        &mut self,
        peer: PublicKey,
        bytes: commonware_runtime::IoBuf,
        sender: &mut S,
        blocker: &mut B,
    ) where
        S: Sender<PublicKey = PublicKey>,
        B: Blocker<PublicKey = PublicKey>,
    {
        let expected = self
            .playing
            .values()
            .any(|playing| playing.dealers.contains(&peer))
            || self
                .dealt
                .as_ref()
                .is_some_and(|dealt| dealt.shares.contains_key(&peer));
        if !expected {
            debug!(
                ?peer,
                "DKG message from no dealer or player of ours; dropped"
            );
            return;
        }
        let Ok(message) = Message::decode_cfg(bytes, &()) else {
            warn!(?peer, "malformed DKG message; peer blocked");
            let _ = blocker.block(peer);
            return;
        };
        self.acknowledge(peer, message, sender);
    }

    /// Handles a decoded `message` from `peer` (this node itself for its own share).
    fn acknowledge<S: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        message: Message,
        sender: &mut S,
    ) {
        match message {
            Message::Dealing {
                epoch,
                public,
                private,
            } => {
                let Some(playing) = self.playing.get_mut(&epoch) else {
                    return;
                };
                if !playing.dealers.contains(&peer) {
                    return;
                }
                let ack = match playing.acks.get(&peer) {
                    Some(ack) => ack.clone(),
                    None => {
                        match playing
                            .player
                            .dealer_message::<N3f1>(peer.clone(), public, private)
                        {
                            Ok(Some(ack)) => {
                                playing.acks.insert(peer.clone(), ack.clone());
                                ack
                            }
                            Ok(None) => return,
                            Err(error) => {
                                warn!(?peer, %error, epoch, "DKG share refused");
                                return;
                            }
                        }
                    }
                };
                if peer == self.key.public_key() {
                    self.take_ack(peer, epoch, ack);
                } else {
                    let reply = Message::Ack { epoch, ack };
                    let _ = sender.send(Recipients::One(peer), reply.encode(), false);
                }
            }
            Message::Ack { epoch, ack } => self.take_ack(peer, epoch, ack),
        }
    }

    /// A player's acknowledgement of this node's dealing.
    fn take_ack(&mut self, player: PublicKey, epoch: u64, ack: PlayerAck<PublicKey>) {
        let Some(dealt) = self.dealt.as_mut().filter(|dealt| dealt.epoch == epoch) else {
            return;
        };
        let Some(dealer) = dealt.dealer.as_mut() else {
            return;
        };
        match dealer.receive_player_ack(player.clone(), ack) {
            Ok(()) => {
                dealt.acked.insert(player);
            }
            Err(error) => debug!(?player, %error, epoch, "DKG acknowledgement refused"),
        }
    }
}

/// Parsed consensus keys (invalid ones left out: the chain checked each when declared).
fn keys(keys: &[NodeKey]) -> BTreeSet<PublicKey> {
    keys.iter()
        .filter_map(|key| key.public_key().ok())
        .collect()
}

/// The value of map item `I` under `key` at `at`, if stored and decodable.
async fn read<I: StorageMap, E: Storage + Clock + Metrics + Spawner>(
    chain: &crate::chain::ChainState<E>,
    at: &logos_primitives::Hash,
    key: &I::Key,
) -> Option<I::Value> {
    let storage_key = I::key(key);
    let bytes = chain.read(at, &storage_key).await.ok()??;
    I::decode_value(&storage_key, &bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::Copying;

    #[test]
    fn messages_round_trip_and_garbage_does_not_decode() {
        let keys: Vec<PrivateKey> = (0..4).map(PrivateKey::from_seed).collect();
        let mut members: Vec<NodeKey> = keys
            .iter()
            .map(|key| NodeKey::from_public_key(&key.public_key()))
            .collect();
        members.sort();
        let round = Round {
            dealers: BoundedVec::truncated(members.clone()),
            players: BoundedVec::truncated(members),
        };
        let chain_id = logos_primitives::ChainId(hash(&[b"dkg"]));
        let info = round_info(&chain_id, Epoch(1), &round).unwrap();
        let rng = rand::rngs::StdRng::seed_from_u64(1);
        let (_, public, shares) =
            Dealer::<Bls, PrivateKey>::start::<N3f1>(rng, info.clone(), keys[0].clone(), None)
                .unwrap();
        let (player_key, private) = shares[0].clone();
        let player = keys
            .iter()
            .find(|key| key.public_key() == player_key)
            .unwrap();
        let mut player = Player::new(info, player.clone()).unwrap();
        let ack = player
            .dealer_message::<N3f1>(keys[0].public_key(), public.clone(), private.clone())
            .unwrap()
            .unwrap();
        for message in [
            Message::Dealing {
                epoch: 1,
                public,
                private,
            },
            Message::Ack { epoch: 1, ack },
        ] {
            let bytes = message.encode().to_vec();
            assert_eq!(Message::decode_cfg(Copying(&bytes), &()).unwrap(), message);
            // Cut short, one byte more, an unknown tag.
            assert!(Message::decode_cfg(Copying(&bytes[..bytes.len() - 1]), &()).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode_cfg(Copying(&longer), &()).is_err());
            let mut tagged = bytes.clone();
            tagged[0] = 9;
            assert!(Message::decode_cfg(Copying(&tagged), &()).is_err());
        }
    }
}
