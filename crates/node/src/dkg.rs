//! A validator's part in each epoch's distributed key generation (module `beacon`; the
//! protocol is in `logos_types::beacon`).
//!
//! While the chain is in epoch `e`, the DKG for epoch `e + 1` runs: its dealers are `e`'s
//! committee, its players `e + 1`'s, as the chain's round fixed them when `e` started. After
//! each finalized block this node:
//! - **as a dealer**, starts its dealing once (the randomness derived from its key, the chain
//!   and the round, so a restarted node deals the same), sends each player its commitment and
//!   private share on the DKG channel ([`crate::engine::channels::DKG`]) until the player
//!   acknowledges (at most every [`RESEND_INTERVAL_MS`]), and when every player has, or half
//!   the epoch has passed (and, for a dealing started after that, as a restarted node's is, it
//!   sent at least [`SENDS_BEFORE_DEADLINE`] times), signs its log
//!   and submits it in parts from its consensus key's account (fees paid there). If the
//!   finalized state shows it neither complete nor rejected [`RETRY_BLOCKS`] later, and none
//!   of the account's transactions is pooled, it submits it again at a doubled fee (at most
//!   [`FEE_DOUBLINGS_MAX`] times), until the block before the epoch's last;
//! - **as a player**, checks each dealer's share against its commitment and answers with its
//!   acknowledgement (the same one again, without decoding, when a dealer resends); once the
//!   chain stored the epoch's group key, derives its share from the logs the chain keeps
//!   through that epoch, checks that its output is the chain's, and hands the share to the
//!   seed task ([`crate::seeds`]), which signs every height of the epoch with it.
//!
//! Every dealing it accepted and every share it derived is kept on disk, encrypted
//! ([`crate::secrets`]): after a restart the dealings of the running round are replayed into a
//! new player (and of the current round too, if its share was not derived yet), and the shares
//! go back to the seed task, so a crash of every validator does not leave the epoch unable to
//! sign its blocks' seeds.
//!
//! Inbound messages are judged by their first 9 bytes (kind and epoch) before anything else is
//! read: a dealing is read only from a dealer of this node's player round of that epoch not
//! acknowledged or refused yet, an acknowledgement only from a player of its dealing still
//! open. Anything else is dropped unread; a message from a member of one of its rounds that
//! does not decode blocks its sender; a
//! share that does not match its commitment, or an acknowledgement that does not verify,
//! makes its sender ignored for the round (it is a committee member: blocking it would cut a
//! consensus link). The channel's quota ([`MESSAGES_PER_SECOND`] per peer) bounds the rest.
//! Message handling is pure ([`Dkg::on_message`] returns [`Effects`]); the run loop sends and
//! blocks.

use crate::{
    evidence::next_nonce,
    relay,
    secrets::{Secrets, Slot},
    shared::Shared,
};
use bytes::BufMut;
use commonware_codec::{
    Buf, Copying, Decode as _, DecodeExt as _, Encode as _, EncodeSize, Error as CodecError, Read,
    ReadExt as _, Write,
};
use commonware_cryptography::{
    bls12381::{
        dkg::feldman_desmedt::{Dealer, DealerPrivMsg, DealerPubMsg, Player, PlayerAck},
        primitives::group::Share,
    },
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
use logos_beacon::{decode_output, round_info, round_logs, Bls};
use logos_primitives::{hash, Address, Amount, NodeKey, PrivateKey, PublicKey};
use logos_types::{
    beacon::{
        self, Dealing, DealingKey, Dealings, GroupKeys, Round, Rounds, DEALING_PART_MAX_BYTES,
    },
    codec::BoundedVec,
    staking::{CurrentEpoch, Epoch, EpochInfo, COMMITTEE_MAX},
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
use zeroize::Zeroizing;

/// Time between two sends of a dealing a player has not acknowledged, ms.
pub const RESEND_INTERVAL_MS: u64 = 1_000;
/// Blocks after which a log the finalized state does not show complete is submitted again.
pub const RETRY_BLOCKS: u64 = 8;
/// Sends of a dealing before the half-epoch deadline may sign the log (a dealer restarted
/// late first gives its players the chance to acknowledge again).
pub const SENDS_BEFORE_DEADLINE: u32 = 3;
/// Most doublings of a resubmitted log's fee (the first submission pays the minimum).
pub const FEE_DOUBLINGS_MAX: u32 = 8;
/// Messages per second each peer may send on the DKG channel (a dealer sends each player about
/// one per second, a player one acknowledgement per dealing).
pub const MESSAGES_PER_SECOND: u32 = 8;
/// Burst of messages each peer may send on the DKG channel.
pub const BURST_MESSAGES: u32 = 32;
/// Bytes of a message's header: its kind (1) and epoch (8).
const HEADER_BYTES: usize = 9;
/// Largest message on the DKG channel, bytes: a dealing for the largest committee (tag, epoch,
/// a commitment of at most [`COMMITTEE_MAX`] G2 points with its header, a 32-byte share).
pub const MESSAGE_MAX_BYTES: usize = 1 + 8 + 96 * COMMITTEE_MAX + 16 + 32;
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
    /// The round's players (a commitment has fewer points).
    type Cfg = NonZeroU32;

    fn read_cfg(buf: &mut impl Buf, players: &NonZeroU32) -> Result<Self, CodecError> {
        let tag = u8::read(buf)?;
        let epoch = u64::read(buf)?;
        match tag {
            0 => Ok(Self::Dealing {
                epoch,
                public: DealerPubMsg::read_cfg(buf, players)?,
                private: DealerPrivMsg::read(buf)?,
            }),
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
    /// Players whose acknowledgement did not verify: ignored for the round.
    refused: BTreeSet<PublicKey>,
    log: Option<Vec<u8>>,
    /// Height of the first block after which it was looked at.
    started_at: Option<u64>,
    submitted_at: Option<u64>,
    attempts: u32,
    sends: u32,
    last_sent: Option<SystemTime>,
}

/// This node's part as a player of one epoch.
struct Playing {
    players: NonZeroU32,
    dealers: BTreeSet<PublicKey>,
    player: Player<Bls, PrivateKey>,
    acks: BTreeMap<PublicKey, PlayerAck<PublicKey>>,
    /// Dealers whose share did not match their commitment: ignored for the round.
    refused: BTreeSet<PublicKey>,
    /// Dealers whose dealing could not be stored: never acknowledged, their resends unread.
    withheld: BTreeSet<PublicKey>,
}

/// The DKG task's state (see the module docs).
pub struct Dkg<E: Storage + Clock + Metrics> {
    context: E,
    key: PrivateKey,
    me: NodeKey,
    dealt: Option<Dealt>,
    /// By epoch: the next epoch's, and the current one's until its share is derived.
    playing: BTreeMap<u64, Playing>,
    /// The encrypted store of accepted dealings and derived shares (`None` if it cannot open).
    secrets: Option<Secrets<E>>,
    /// Secrets to store after the current event (message handling stays pure).
    unsaved: Vec<(Slot, Zeroizing<Vec<u8>>)>,
    /// The epoch whose player was last rebuilt from stored dealings (once per epoch).
    rebuilt: Option<u64>,
    submitted: Counter,
    derived: Counter,
}

/// What handling a message or a resend asks of the network.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Messages to send, each to one peer.
    pub sends: Vec<(PublicKey, Message)>,
    /// Whether to block the sender (its message did not decode).
    pub block: bool,
    /// This node's acknowledgement of its own dealing (epoch, acknowledgement), taken by its
    /// dealer only once the share is stored ([`Dkg::withhold`], [`Dkg::take_own`]).
    pub own: Option<(u64, PlayerAck<PublicKey>)>,
}

/// What the finalized state says of the DKG at the tip.
struct View {
    height: u64,
    current: EpochInfo,
    /// The current epoch's round, kept through the epoch (its logs give the shares).
    this: Option<Round>,
    /// The next epoch's round, as the chain fixed it.
    next: Round,
    /// Whether this node's log for the next epoch is complete or rejected on chain.
    settled: bool,
    /// Whether this node's account has transactions in the pool.
    pooled: bool,
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
            secrets: None,
            unsaved: Vec::new(),
            rebuilt: None,
            submitted,
            derived,
        }
    }

    /// Keeps this node's DKG secrets in `secrets` (without it, a restart loses them).
    pub fn with_secrets(mut self, secrets: Secrets<E>) -> Self {
        self.secrets = Some(secrets);
        self
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
        self.load_shares(&shared);
        let mut finalized = shared.subscribe();
        loop {
            let resend = self
                .context
                .sleep(Duration::from_millis(RESEND_INTERVAL_MS));
            let effects = futures::select_biased! {
                block = finalized.recv().fuse() => match block {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        self.on_block(&shared, &relay).await;
                        self.resend()
                    }
                    Err(RecvError::Closed) => return,
                },
                message = receiver.recv().fuse() => match message {
                    Ok((peer, bytes)) => {
                        let effects = self.on_message(&peer, bytes.as_ref());
                        if effects.block {
                            warn!(?peer, "malformed DKG message; peer blocked");
                            let _ = blocker.block(peer);
                        }
                        effects
                    }
                    Err(_) => return,
                },
                _ = resend.fuse() => self.resend(),
            };
            // Stored before any acknowledgement leaves: a dealer holding it relies on this
            // node keeping the share it acknowledged. One not stored is withheld, so its dealer
            // reveals the share in its log instead.
            let unsaved = self.save().await;
            let mut effects = self.withhold(effects, &unsaved);
            self.take_own(&mut effects);
            for (peer, message) in effects.sends {
                let _ = sender.send(Recipients::One(peer), message.encode(), false);
            }
        }
    }

    /// Gives this node's dealer its own acknowledgement, if `effects` carries it (stored).
    pub fn take_own(&mut self, effects: &mut Effects) {
        if let Some((epoch, ack)) = effects.own.take() {
            let me = self.key.public_key();
            self.take_ack(&me, epoch, ack);
        }
    }

    /// Hands the shares the secret store keeps to the seed task.
    fn load_shares(&mut self, shared: &Shared<E>) {
        let Some(secrets) = self.secrets.as_ref() else {
            return;
        };
        for (epoch, bytes) in secrets.shares() {
            match Share::decode(Copying(&bytes[..])) {
                Ok(share) => shared.with_seeds(|book| book.add_share(epoch, share)),
                Err(error) => warn!(%error, epoch, "stored DKG share unreadable"),
            }
        }
        shared.seed_work().notify_one();
    }

    /// Stores the secrets the last event produced; returns the dealings that could not be
    /// stored (all of them without a store), as (epoch, dealer position).
    async fn save(&mut self) -> Vec<(u64, u16)> {
        let mut failed = Vec::new();
        for (slot, secret) in std::mem::take(&mut self.unsaved) {
            let stored = match self.secrets.as_mut() {
                Some(secrets) => secrets.put(slot, &secret).await,
                None => Err(crate::secrets::SecretsError::Closed),
            };
            if let Err(error) = stored {
                warn!(%error, ?slot, "DKG secret not stored");
                if let Slot::Dealing(epoch, position) = slot {
                    failed.push((epoch, position));
                }
            }
        }
        failed
    }

    /// `effects` without the acknowledgements of the dealings in `unsaved` (epoch, dealer
    /// position), which are forgotten: their dealers, unacknowledged, reveal those shares in
    /// their logs, so this node never holds an acknowledged share it could lose in a restart.
    pub fn withhold(&mut self, mut effects: Effects, unsaved: &[(u64, u16)]) -> Effects {
        for &(epoch, position) in unsaved {
            let Some(playing) = self.playing.get_mut(&epoch) else {
                continue;
            };
            let Some(dealer) = playing.dealers.iter().nth(usize::from(position)).cloned() else {
                continue;
            };
            playing.acks.remove(&dealer);
            playing.withheld.insert(dealer.clone());
            if dealer == self.key.public_key()
                && effects.own.as_ref().is_some_and(|(at, _)| *at == epoch)
            {
                effects.own = None;
            }
            effects.sends.retain(|(peer, message)| {
                !(peer == &dealer
                    && matches!(message, Message::Ack { epoch: at, .. } if *at == epoch))
            });
        }
        effects
    }

    /// After a restart: a player for the current epoch rebuilt from the stored dealings, if
    /// this node plays it and holds no share of it (once per epoch).
    fn rebuild_current(&mut self, shared: &Shared<E>, epoch: u64, round: Option<&Round>) {
        let Some(round) = round else {
            return;
        };
        if self.rebuilt == Some(epoch)
            || self.playing.contains_key(&epoch)
            || shared.with_seeds(|book| book.has_share(epoch))
        {
            return;
        }
        self.rebuilt = Some(epoch);
        self.join_playing(&shared.chain_id(), epoch, round);
    }

    /// Replays the stored dealings of `epoch` into its new player (their acknowledgements are
    /// sent again when their dealers resend).
    fn replay(&mut self, epoch: u64) {
        let Some(playing) = self.playing.get(&epoch) else {
            return;
        };
        let dealers: Vec<PublicKey> = playing.dealers.iter().cloned().collect();
        let players = playing.players;
        let stored = self
            .secrets
            .as_ref()
            .map(|secrets| secrets.dealings(epoch))
            .unwrap_or_default();
        for (position, bytes) in stored {
            let Some(dealer) = dealers.get(usize::from(position)) else {
                continue;
            };
            if let Ok(Message::Dealing {
                public, private, ..
            }) = Message::decode_cfg(Copying(&bytes[..]), &players)
            {
                let _ = self.play(dealer, epoch, public, private);
            }
        }
        // Stored already.
        self.unsaved.clear();
        debug!(epoch, "stored DKG dealings replayed");
    }

    /// After a finalized block: starts, closes and submits this node's rounds.
    async fn on_block(&mut self, shared: &Shared<E>, relay: &relay::Mailbox) {
        let Some(view) = self.view(shared).await else {
            return;
        };
        let epoch = view.current.epoch.get();
        self.join(&shared.chain_id(), epoch.saturating_add(1), &view.next);
        self.rebuild_current(shared, epoch, view.this.as_ref());
        self.playing.retain(|kept, _| *kept >= epoch);
        if let Some(secrets) = self.secrets.as_mut() {
            if let Err(error) = secrets.retain_from(epoch.saturating_sub(1)).await {
                warn!(%error, "old DKG secrets not removed");
            }
        }
        self.close_dealing(&view, shared, relay).await;
        self.derive_share(shared, epoch).await;
    }

    /// Takes this node's parts in `round`, the DKG for `epoch`: its dealing if it deals, its
    /// player if it plays (each once).
    fn join(&mut self, chain_id: &logos_primitives::ChainId, epoch: u64, round: &Round) {
        if self.dealt.as_ref().map(|dealt| dealt.epoch) != Some(epoch) {
            self.dealt = self.start_dealing(chain_id, epoch, round);
        }
        self.join_playing(chain_id, epoch, round);
    }

    /// This node's player of `round`, the DKG for `epoch`, if it plays (once), with the
    /// dealings stored for it replayed.
    fn join_playing(&mut self, chain_id: &logos_primitives::ChainId, epoch: u64, round: &Round) {
        if self.playing.contains_key(&epoch) || !round.players.contains(&self.me) {
            return;
        }
        let Ok(info) = round_info(chain_id, Epoch(epoch), round) else {
            return;
        };
        let players = u32::try_from(round.players.len())
            .ok()
            .and_then(NonZeroU32::new);
        if let (Ok(player), Some(players)) = (Player::new(info, self.key.clone()), players) {
            let playing = Playing {
                players,
                dealers: keys(&round.dealers),
                player,
                acks: BTreeMap::new(),
                refused: BTreeSet::new(),
                withheld: BTreeSet::new(),
            };
            self.playing.insert(epoch, playing);
            self.replay(epoch);
        }
    }

    /// The finalized state's epoch, next round and this node's log, at the tip.
    async fn view(&self, shared: &Shared<E>) -> Option<View> {
        let chain = shared.chain().await;
        let tip = chain.tip();
        let (at, height) = (tip.digest, tip.height.get());
        let current = match chain.read(&at, &CurrentEpoch::key()).await.ok()? {
            Some(bytes) => CurrentEpoch::decode_value(&CurrentEpoch::key(), &bytes).ok()?,
            None => CurrentEpoch::default_value(),
        };
        let target = current.epoch.next()?;
        // Only the chain's round: the same randomness never deals two rounds.
        let next = read::<Rounds, E>(&chain, &at, &target).await?;
        let this = read::<Rounds, E>(&chain, &at, &current.epoch).await;
        let key = DealingKey {
            epoch: target,
            dealer: self.me,
        };
        let settled = read::<Dealings, E>(&chain, &at, &key)
            .await
            .is_some_and(|dealing| dealing.complete || dealing.rejected);
        let account = Address::from_public_key(&self.key.public_key());
        let finalized = chain
            .account_at(&at, &account)
            .await
            .unwrap_or_default()
            .nonce;
        drop(chain);
        let pooled = shared.with_mempool(|pool| pool.next_nonce(&account, finalized)) > finalized;
        Some(View {
            height,
            current,
            this,
            next,
            settled,
            pooled,
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
            &round.encode(),
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
            refused: BTreeSet::new(),
            log: None,
            started_at: None,
            submitted_at: None,
            attempts: 0,
            sends: 0,
            last_sent: None,
        })
    }

    /// Signs the log once every player acknowledged, or half the epoch passed after a few
    /// sends, and submits it (again, at a higher fee, if the chain does not show it settled
    /// [`RETRY_BLOCKS`] later and nothing of this account is pooled).
    async fn close_dealing(&mut self, view: &View, shared: &Shared<E>, relay: &relay::Mailbox) {
        let Some(dealt) = self.dealt.as_mut() else {
            return;
        };
        let start = view.current.start_height;
        let half = start.saturating_add(view.current.length_blocks / 2);
        let started_at = *dealt.started_at.get_or_insert(view.height);
        let everyone = dealt.acked.len() == dealt.shares.len();
        // A dealing started after the deadline (a restart) first gives players a few sends.
        let deadline =
            view.height >= half && (started_at < half || dealt.sends >= SENDS_BEFORE_DEADLINE);
        if everyone || deadline {
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
        if view.settled || view.pooled || !open || !due {
            return;
        }
        dealt.submitted_at = Some(view.height);
        let doublings = dealt.attempts.min(FEE_DOUBLINGS_MAX);
        dealt.attempts = dealt.attempts.saturating_add(1);
        let epoch = dealt.epoch;
        let fee = Amount(
            shared
                .genesis()
                .params
                .min_fee
                .0
                .saturating_mul(1u128 << doublings),
        );
        match self.submit(shared, relay, epoch, &log, fee).await {
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
        fee: Amount,
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
                fee,
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
                    if dealing.complete {
                        complete.push(dealing);
                    }
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
            Ok((output, share)) => {
                let theirs = decode_output(&stored).ok();
                if theirs.as_ref() == Some(&output) {
                    self.derived.inc();
                    info!(epoch, "DKG share derived; the group key is the chain's");
                    let secret = Zeroizing::new(share.encode().to_vec());
                    self.unsaved.push((Slot::Share(epoch), secret));
                    shared.with_seeds(|book| {
                        book.add_key(epoch, Arc::new(output));
                        book.add_share(epoch, share);
                    });
                    shared.seed_work().notify_one();
                } else {
                    warn!(epoch, "DKG output differs from the chain's group key");
                }
            }
            Err(error) => warn!(%error, epoch, "DKG share not derived"),
        }
    }

    /// The dealing for each player that has not acknowledged it, at most every
    /// [`RESEND_INTERVAL_MS`] (this node's own share is taken at once, without the network).
    pub fn resend(&mut self) -> Effects {
        let now = self.context.current();
        let me = self.key.public_key();
        let Some(dealt) = self.dealt.as_mut() else {
            return Effects::default();
        };
        if dealt.dealer.is_none() {
            return Effects::default();
        }
        let interval = Duration::from_millis(RESEND_INTERVAL_MS);
        let recent = dealt.last_sent.is_some_and(|sent| {
            now.duration_since(sent)
                .is_ok_and(|elapsed| elapsed < interval)
        });
        if recent {
            return Effects::default();
        }
        dealt.last_sent = Some(now);
        dealt.sends = dealt.sends.saturating_add(1);
        let epoch = dealt.epoch;
        let outgoing: Vec<(PublicKey, DealerPrivMsg)> = dealt
            .shares
            .iter()
            .filter(|(player, _)| !dealt.acked.contains(*player))
            .map(|(player, share)| (player.clone(), share.clone()))
            .collect();
        let public = dealt.public.clone();
        let mut effects = Effects::default();
        for (player, share) in outgoing {
            if player == me {
                effects.own = self
                    .play(&me, epoch, public.clone(), share)
                    .map(|ack| (epoch, ack));
                continue;
            }
            let message = Message::Dealing {
                epoch,
                public: public.clone(),
                private: share,
            };
            effects.sends.push((player, message));
        }
        effects
    }

    /// A message from `peer` on the DKG channel: what to send back, and whether to block it
    /// (see the module docs for what is read).
    pub fn on_message(&mut self, peer: &PublicKey, bytes: &[u8]) -> Effects {
        let header = bytes.split_first().and_then(|(&kind, rest)| {
            let epoch = rest.get(..HEADER_BYTES - 1)?.try_into().ok()?;
            Some((kind, u64::from_be_bytes(epoch)))
        });
        match header {
            Some((0, epoch)) => self.on_dealing(peer, epoch, bytes),
            Some((1, epoch)) => self.on_ack(peer, epoch, bytes),
            // Not a message: blocked if it comes from a member of a round of ours.
            _ if self.knows(peer) => Effects::blocking(),
            _ => Effects::default(),
        }
    }

    /// Whether `peer` is a dealer or player of one of this node's rounds.
    fn knows(&self, peer: &PublicKey) -> bool {
        self.playing
            .values()
            .any(|playing| playing.dealers.contains(peer))
            || self
                .dealt
                .as_ref()
                .is_some_and(|dealt| dealt.shares.contains_key(peer))
    }

    /// A dealing from `peer` for `epoch`.
    fn on_dealing(&mut self, peer: &PublicKey, epoch: u64, bytes: &[u8]) -> Effects {
        let Some(playing) = self.playing.get(&epoch) else {
            return Effects::default();
        };
        if !playing.dealers.contains(peer)
            || playing.refused.contains(peer)
            || playing.withheld.contains(peer)
        {
            return Effects::default();
        }
        // Acknowledged already: the same acknowledgement, nothing decoded.
        if let Some(ack) = playing.acks.get(peer) {
            return Effects::reply(
                peer,
                Message::Ack {
                    epoch,
                    ack: ack.clone(),
                },
            );
        }
        let Ok(Message::Dealing {
            public, private, ..
        }) = Message::decode_cfg(Copying(bytes), &playing.players)
        else {
            return Effects::blocking();
        };
        match self.play(peer, epoch, public, private) {
            Some(ack) => Effects::reply(peer, Message::Ack { epoch, ack }),
            None => Effects::default(),
        }
    }

    /// Hands a dealing to this node's player of `epoch`: its acknowledgement, if the share
    /// matches the commitment (a dealer whose share does not is ignored for the round).
    fn play(
        &mut self,
        dealer: &PublicKey,
        epoch: u64,
        public: DealerPubMsg<Bls>,
        private: DealerPrivMsg,
    ) -> Option<PlayerAck<PublicKey>> {
        let playing = self.playing.get_mut(&epoch)?;
        if let Some(ack) = playing.acks.get(dealer) {
            return Some(ack.clone());
        }
        let message = Message::Dealing {
            epoch,
            public: public.clone(),
            private: private.clone(),
        };
        match playing
            .player
            .dealer_message::<N3f1>(dealer.clone(), public, private)
        {
            Ok(Some(ack)) => {
                playing.acks.insert(dealer.clone(), ack.clone());
                let position = playing
                    .dealers
                    .iter()
                    .position(|known| known == dealer)
                    .and_then(|position| u16::try_from(position).ok());
                if let Some(position) = position {
                    let secret = Zeroizing::new(message.encode().to_vec());
                    self.unsaved.push((Slot::Dealing(epoch, position), secret));
                }
                Some(ack)
            }
            Ok(None) => None,
            Err(error) => {
                warn!(?dealer, %error, epoch, "DKG share refused; dealer ignored this round");
                playing.refused.insert(dealer.clone());
                None
            }
        }
    }

    /// An acknowledgement from `peer` of this node's dealing for `epoch`.
    fn on_ack(&mut self, peer: &PublicKey, epoch: u64, bytes: &[u8]) -> Effects {
        let Some(dealt) = self.dealt.as_ref().filter(|dealt| dealt.epoch == epoch) else {
            return Effects::default();
        };
        let open = dealt.dealer.is_some()
            && dealt.shares.contains_key(peer)
            && !dealt.acked.contains(peer)
            && !dealt.refused.contains(peer);
        if !open {
            return Effects::default();
        }
        let players = NonZeroU32::new(u32::try_from(dealt.shares.len()).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let Ok(Message::Ack { ack, .. }) = Message::decode_cfg(Copying(bytes), &players) else {
            return Effects::blocking();
        };
        self.take_ack(peer, epoch, ack);
        Effects::default()
    }

    /// A player's acknowledgement of this node's dealing (one that does not verify makes the
    /// player ignored for the round).
    fn take_ack(&mut self, player: &PublicKey, epoch: u64, ack: PlayerAck<PublicKey>) {
        let Some(dealt) = self.dealt.as_mut().filter(|dealt| dealt.epoch == epoch) else {
            return;
        };
        let Some(dealer) = dealt.dealer.as_mut() else {
            return;
        };
        match dealer.receive_player_ack(player.clone(), ack) {
            Ok(()) => {
                dealt.acked.insert(player.clone());
            }
            Err(error) => {
                warn!(?player, %error, epoch, "DKG acknowledgement refused; player ignored this round");
                dealt.refused.insert(player.clone());
            }
        }
    }
}

impl Effects {
    fn blocking() -> Self {
        Self {
            sends: Vec::new(),
            block: true,
            own: None,
        }
    }

    fn reply(peer: &PublicKey, message: Message) -> Self {
        Self {
            sends: vec![(peer.clone(), message)],
            block: false,
            own: None,
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
    use commonware_codec::FixedSize as _;
    use commonware_runtime::{deterministic, Runner as _, Supervisor as _};

    const EPOCH: u64 = 1;

    fn chain_id() -> logos_primitives::ChainId {
        logos_primitives::ChainId(hash(&[b"dkg"]))
    }

    /// Four members dealing to themselves, ascending by key.
    fn members() -> (Vec<PrivateKey>, Round) {
        let mut keys: Vec<PrivateKey> = (0..4).map(PrivateKey::from_seed).collect();
        keys.sort_by_key(|key| key.public_key());
        let members: Vec<NodeKey> = keys
            .iter()
            .map(|key| NodeKey::from_public_key(&key.public_key()))
            .collect();
        let round = Round {
            dealers: BoundedVec::truncated(members.clone()),
            players: BoundedVec::truncated(members),
        };
        (keys, round)
    }

    /// Member `index`'s task, joined to the round.
    fn member(context: &deterministic::Context, index: usize) -> Dkg<deterministic::Context> {
        let (keys, round) = members();
        let mut dkg = Dkg::new(
            context.child("dkg").with_attribute("member", index),
            keys[index].clone(),
        );
        dkg.join(&chain_id(), EPOCH, &round);
        dkg
    }

    /// Member `index`'s dealing to member `to`, as sent.
    fn dealing(dkg: &mut Dkg<deterministic::Context>, to: &PublicKey) -> Message {
        dkg.resend()
            .sends
            .into_iter()
            .find(|(peer, _)| peer == to)
            .map(|(_, message)| message)
            .expect("a dealing for the player")
    }

    #[test]
    fn an_acknowledgement_of_a_dealing_not_stored_is_withheld_for_good() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let (mut dealer, mut player) = (member(&context, 0), member(&context, 1));
            let to = keys[1].public_key();
            let message = dealing(&mut dealer, &to);
            let from = keys[0].public_key();
            let effects = player.on_message(&from, &message.encode());
            assert_eq!(effects.sends.len(), 1);
            // Queued for the store (this player has none: nothing is stored).
            assert_eq!(player.unsaved.len(), 1);
            let unsaved = player.save().await;
            let position = player.playing[&EPOCH]
                .dealers
                .iter()
                .position(|dealer| dealer == &from)
                .unwrap() as u16;
            assert_eq!(unsaved, vec![(EPOCH, position)]);
            let withheld = player.withhold(effects, &unsaved);
            assert!(withheld.sends.is_empty(), "{withheld:?}");
            // Its own dealing too: the dealer gets no acknowledgement from itself unstored.
            let mut own = player.resend();
            assert!(own.own.is_some());
            let unsaved = player.save().await;
            assert_eq!(unsaved.len(), 1, "{unsaved:?}");
            let mut own = player.withhold(std::mem::take(&mut own), &unsaved);
            assert!(own.own.is_none());
            player.take_own(&mut own);
            let me = keys[1].public_key();
            assert!(!player.dealt.as_ref().unwrap().acked.contains(&me));
            // The dealer sending it again gets no acknowledgement either: it reveals the share.
            let again = player.on_message(&from, &message.encode());
            assert!(again.sends.is_empty(), "{again:?}");
            assert!(!again.block);
        });
    }

    #[test]
    fn the_largest_dealing_fits_the_message_bound() {
        let max = NonZeroU32::new(COMMITTEE_MAX as u32).unwrap();
        let largest = 1 + 8 + DealerPubMsg::<Bls>::max_encode_size(max) + DealerPrivMsg::SIZE;
        assert!(largest <= MESSAGE_MAX_BYTES, "{largest}");
        // A network of one-transaction blocks still carries it.
        let mut genesis = logos_types::Genesis {
            chain_name: "small".into(),
            timestamp_ms: 0,
            params: logos_types::Params::default(),
            validators: Vec::new(),
            accounts: Vec::new(),
            parent: None,
        };
        genesis.params.max_block_transactions = 1;
        let bound = crate::engine::max_message_size_bytes(&genesis) as usize;
        assert!(bound >= MESSAGE_MAX_BYTES, "{bound}");
    }

    #[test]
    fn a_dealing_is_acknowledged_once_and_a_resend_gets_the_same_ack_unread() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let (mut dealer, mut player) = (member(&context, 0), member(&context, 1));
            let to = keys[1].public_key();
            let message = dealing(&mut dealer, &to);
            let from = keys[0].public_key();
            let first = player.on_message(&from, &message.encode());
            assert!(!first.block);
            let [(peer, Message::Ack { epoch, ack })] = &first.sends[..] else {
                panic!("{first:?}");
            };
            assert_eq!((peer, *epoch), (&from, EPOCH));
            // Sent again, even with a body that would not decode: the same ack, nothing read.
            let mut garbage = message.encode().to_vec();
            garbage.truncate(HEADER_BYTES + 3);
            let again = player.on_message(&from, &garbage);
            assert_eq!(again.sends, first.sends);
            assert!(!again.block);
            // The dealer takes it; a second copy is dropped unread.
            let reply = Message::Ack {
                epoch: EPOCH,
                ack: ack.clone(),
            }
            .encode();
            assert_eq!(dealer.on_message(&to, &reply), Effects::default());
            assert!(dealer.dealt.as_ref().unwrap().acked.contains(&to));
            assert_eq!(
                dealer.on_message(&to, &reply[..HEADER_BYTES]),
                Effects::default()
            );
        });
    }

    #[test]
    fn strangers_and_other_epochs_are_dropped_unread_and_garbage_blocks_members() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let mut player = member(&context, 1);
            let stranger = PrivateKey::from_seed(99).public_key();
            let dealer = keys[0].public_key();
            // A stranger's bytes are not even read: no block, nothing sent.
            for bytes in [&[0u8; 3][..], &[0u8; 200][..], &[1u8; 80][..]] {
                assert_eq!(player.on_message(&stranger, bytes), Effects::default());
            }
            // A member's dealing for an epoch this node does not play: dropped.
            let mut other = vec![0u8];
            other.extend(7u64.to_be_bytes());
            other.extend([0u8; 100]);
            assert_eq!(player.on_message(&dealer, &other), Effects::default());
            // A member's message too short for its header, of an unknown kind, or that does not
            // decode: blocked.
            let mut unknown = vec![9u8];
            unknown.extend(EPOCH.to_be_bytes());
            let mut cut = vec![0u8];
            cut.extend(EPOCH.to_be_bytes());
            cut.extend([1u8; 20]);
            for bytes in [&[0u8; 5][..], &unknown[..], &cut[..]] {
                assert!(player.on_message(&dealer, bytes).block);
            }
        });
    }

    #[test]
    fn a_share_that_does_not_match_gets_no_ack_and_its_dealer_is_ignored() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let (mut dealer, mut player) = (member(&context, 0), member(&context, 1));
            let from = keys[0].public_key();
            // Player 2's share sent to player 1.
            let Message::Dealing {
                public, private, ..
            } = dealing(&mut dealer, &keys[2].public_key())
            else {
                unreachable!()
            };
            let wrong = Message::Dealing {
                epoch: EPOCH,
                public,
                private,
            };
            assert_eq!(
                player.on_message(&from, &wrong.encode()),
                Effects::default()
            );
            // Its right share afterwards is not read either: the dealer is out of the round.
            dealer.dealt.as_mut().unwrap().last_sent = None;
            let right = dealing(&mut dealer, &keys[1].public_key());
            assert_eq!(
                player.on_message(&from, &right.encode()),
                Effects::default()
            );
            assert!(player.playing[&EPOCH].acks.is_empty());
        });
    }

    #[test]
    fn acks_that_do_not_verify_and_acks_from_non_players_count_for_nothing() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let mut dealer = member(&context, 0);
            let mut effects = dealer.resend();
            assert_eq!(effects.sends.len(), 3, "one dealing per other player");
            assert!(effects.own.is_some());
            dealer.take_own(&mut effects);
            let (mut second, mut third) = (member(&context, 1), member(&context, 2));
            // Player 1's acknowledgement of dealer 1's dealing, passed off as one of dealer 0's.
            let own = dealing(&mut second, &keys[2].public_key());
            let reply = third.on_message(&keys[1].public_key(), &own.encode());
            let [(_, Message::Ack { ack, .. })] = &reply.sends[..] else {
                panic!("{reply:?}");
            };
            let forged = Message::Ack {
                epoch: EPOCH,
                ack: ack.clone(),
            }
            .encode();
            assert_eq!(
                dealer.on_message(&keys[2].public_key(), &forged),
                Effects::default()
            );
            let dealt = dealer.dealt.as_ref().unwrap();
            assert!(dealt.refused.contains(&keys[2].public_key()));
            assert!(!dealt.acked.contains(&keys[2].public_key()));
            // This node's own share was taken without the network, once per send window.
            assert!(dealt.acked.contains(&keys[0].public_key()));
            // From a stranger: unread.
            let stranger = PrivateKey::from_seed(99).public_key();
            assert_eq!(dealer.on_message(&stranger, &forged), Effects::default());
            assert_eq!(dealer.resend(), Effects::default());
        });
    }

    #[test]
    fn messages_round_trip() {
        deterministic::Runner::default().start(|context| async move {
            let (keys, _) = members();
            let mut dealer = member(&context, 0);
            let message = dealing(&mut dealer, &keys[1].public_key());
            let players = NonZeroU32::new(4).unwrap();
            let bytes = message.encode().to_vec();
            assert_eq!(
                Message::decode_cfg(Copying(&bytes), &players).unwrap(),
                message
            );
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode_cfg(Copying(&longer), &players).is_err());
        });
    }
}
