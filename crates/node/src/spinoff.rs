//! Spin-off: a new network whose genesis is derived from another network's finalized state
//! (`logos spinoff`, issue "Proof of stake and the DAO").
//!
//! ## How the parent's state at height H is verified
//! [`snapshot`] trusts the parent's RPC server for nothing but availability:
//! 1. the parent's genesis must hash to the parent's chain id (the caller pins it);
//! 2. every block `1..=H` is fetched, must link to its parent by digest, and is covered by a
//!    finalization certificate of its epoch's committee, the committees followed from the
//!    genesis validators through every change on chain (as [`crate::follower`] does);
//! 3. every block is executed here, and its state root and receipts root must equal the
//!    header's.
//!
//! The state after block H is then the parent's state at H, and it is **complete**: every
//! account is enumerated from it. Per-key state proofs (`logos_getStorage`) could show each
//! value but not that the list of accounts is whole, since the store hashes its keys. The
//! price is re-executing H blocks (a devnet's thousands of blocks take seconds).
//!
//! ## What the child's genesis keeps ([`child_genesis`])
//! - Every account with a balance, at its **total** balance at H (free plus reserved): bonds,
//!   escrows and stakes are obligations of the parent network, so their reserves return to
//!   their owners; nonces start again at 0 (the chain id differs, so no parent transaction is
//!   valid on the child).
//! - The parent's fee parameters and, from its state at H, its staking settings (epoch length,
//!   committee size, elections) and bootstrap authority (absent if the parent removed it).
//! - `[parent]`: the parent's chain id, H, the block hash and state root at H (all in the
//!   child's chain id).
//! - New validators (the caller's keys): the child finalizes with its own committee.
//!
//! Leases, providers, the catalog and proposals are not carried: a new network sets up its own.

use crate::{
    chain::{ChainError, ChainState},
    engine::genesis_block,
    follower::{self, FollowError},
};
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use jsonrpsee::http_client::HttpClientBuilder;
use logos_api::rpc::LogosApiClient;
use logos_framework::{apply, MapExt, State, ValueExt};
use logos_types::{
    balances::Accounts,
    genesis::{GenesisAccount, GenesisParent, GenesisValidator, GENESIS_ACCOUNTS_MAX},
    governance, staking, Genesis, Params,
};
use std::time::Duration;

/// Polls of the parent that may fail in a row before [`snapshot`] gives up.
pub const FAILED_POLLS_MAX: u32 = 20;
/// Time between polls of the parent, ms.
pub const POLL_INTERVAL_MS: u64 = 200;
/// Largest genesis text [`fetch_genesis`] accepts, bytes (the RPC server's response limit).
pub const GENESIS_TEXT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Errors of a spin-off.
#[derive(Debug, thiserror::Error)]
pub enum SpinoffError {
    /// The parent's RPC server failed or sent something that does not check out.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// The local replay of the parent's state failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The parent's genesis is not the one asked for or is unusable.
    #[error("parent genesis: {0}")]
    Genesis(String),
    /// The parent has not finalized the asked height.
    #[error("the parent's finalized head is {head}, below the asked height {height}")]
    NotFinalized {
        /// The parent's finalized height.
        head: u64,
        /// The asked height.
        height: u64,
    },
    /// The parent's state at the height cannot make a valid genesis.
    #[error("parent state: {0}")]
    State(String),
}

/// The parent's verified state after block `parent.height`.
pub struct Snapshot {
    /// The parent's chain id and its block at the height.
    pub parent: GenesisParent,
    /// Every key of the parent's state at the height.
    pub state: State,
}

/// Fetches the parent's genesis from `rpc` and checks that it hashes to `chain_id`.
pub async fn fetch_genesis(
    rpc: &str,
    chain_id: logos_primitives::ChainId,
) -> Result<Genesis, SpinoffError> {
    let client = client(rpc)?;
    let text = client.get_genesis().await.map_err(FollowError::from)?;
    let genesis =
        Genesis::from_toml(&text).map_err(|error| SpinoffError::Genesis(error.to_string()))?;
    if genesis.chain_id() != chain_id {
        return Err(SpinoffError::Genesis(format!(
            "the server's genesis hashes to {}, not to the parent chain id {chain_id}",
            genesis.chain_id()
        )));
    }
    Ok(genesis)
}

/// Replays the parent network (`genesis`, served by `rpc`) from genesis to `height`, checking
/// every block (see the module docs), in `context`'s storage under partition `partition`.
pub async fn snapshot<E: Storage + Clock + Metrics + Spawner>(
    context: E,
    partition: &str,
    genesis: &Genesis,
    rpc: &str,
    height: u64,
) -> Result<Snapshot, SpinoffError> {
    let client = client(rpc)?;
    let head = client
        .get_finalized_head()
        .await
        .map_err(FollowError::from)?
        .height;
    if head < height {
        return Err(SpinoffError::NotFinalized { head, height });
    }
    let first = genesis_block(genesis).map_err(|e| SpinoffError::Genesis(e.to_string()))?;
    let mut chain = ChainState::open(
        context,
        partition,
        crate::chain::STATE_LOG_ITEMS_PER_SECTION,
        genesis,
        &first,
    )
    .await?;
    if chain.tip().height.get() != 0 {
        return Err(SpinoffError::State(format!(
            "partition {partition} already holds a state; start from an empty directory"
        )));
    }
    chain.keep_writes(true);
    let mut state = State::new();
    apply(
        &mut state,
        logos_runtime::genesis_state(genesis).map_err(SpinoffError::Genesis)?,
    );
    let mut failures = 0;
    while chain.tip().height.get() < height {
        let before = chain.tip().height.get();
        let polled = follower::poll(&client, genesis, &mut chain, height, &mut |executed| {
            if let Some(writes) = &executed.writes {
                apply(&mut state, writes.clone());
            }
        })
        .await;
        match polled {
            Ok(_) if chain.tip().height.get() > before => failures = 0,
            Ok(_) => failures += 1,
            Err(error) => {
                tracing::warn!(%error, height = before, "spin-off replay");
                failures += 1;
                if failures >= FAILED_POLLS_MAX {
                    return Err(error.into());
                }
            }
        }
        if failures >= FAILED_POLLS_MAX {
            return Err(SpinoffError::State(format!(
                "no certified progress past block {before} in {FAILED_POLLS_MAX} polls"
            )));
        }
        if chain.tip().height.get() == before {
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }
    chain.commit().await?;
    let block = follower::fetch(&client, genesis, height).await?;
    let tip = chain.tip();
    if block.digest() != tip.digest {
        return Err(SpinoffError::State(format!(
            "block {height} changed while it was replayed"
        )));
    }
    Ok(Snapshot {
        parent: GenesisParent {
            chain_id: genesis.chain_id(),
            height,
            block_hash: tip.digest,
            state_root: tip.state_root,
        },
        state,
    })
}

/// The spin-off's genesis from the parent's `snapshot` (see the module docs): named
/// `chain_name`, started at `timestamp_ms`, with `validators`.
pub fn child_genesis(
    parent_genesis: &Genesis,
    snapshot: &Snapshot,
    chain_name: String,
    timestamp_ms: u64,
    validators: Vec<GenesisValidator>,
) -> Result<Genesis, SpinoffError> {
    let state_error = |error: logos_types::StateError| SpinoffError::State(error.to_string());
    let mut accounts = Vec::new();
    for entry in Accounts::iter_from(&snapshot.state) {
        let (address, account) = entry.map_err(state_error)?;
        let balance = account
            .balance
            .checked_add(account.reserved)
            .ok_or_else(|| SpinoffError::State(format!("account {address}: balance overflows")))?;
        if balance == logos_primitives::Amount::ZERO {
            continue;
        }
        if accounts.len() >= GENESIS_ACCOUNTS_MAX {
            return Err(SpinoffError::State(format!(
                "more than {GENESIS_ACCOUNTS_MAX} accounts"
            )));
        }
        accounts.push(GenesisAccount { address, balance });
    }
    let staking = staking::Config::get_from(&snapshot.state).map_err(state_error)?;
    let authority = governance::Authority::get_from(&snapshot.state).map_err(state_error)?;
    let genesis = Genesis {
        chain_name,
        timestamp_ms,
        params: Params {
            min_fee: parent_genesis.params.min_fee,
            max_block_transactions: parent_genesis.params.max_block_transactions,
            privileged_account: authority,
            epoch_length_blocks: Some(staking.epoch_length_blocks),
            committee_size: Some(staking.committee_size),
            elections: staking.elections,
            unattested: parent_genesis.params.unattested,
        },
        validators,
        accounts,
        parent: Some(snapshot.parent.clone()),
    };
    genesis
        .validate()
        .map_err(|error| SpinoffError::State(error.to_string()))?;
    Ok(genesis)
}

fn client(rpc: &str) -> Result<jsonrpsee::http_client::HttpClient, SpinoffError> {
    Ok(HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .max_response_size(GENESIS_TEXT_MAX_BYTES as u32)
        .build(rpc)
        .map_err(FollowError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use logos_primitives::{hash, Address, Amount};
    use logos_types::{balances::AccountInfo, codec::encode, StorageMap, StorageValue};

    fn snapshot_with(accounts: &[(u8, u128, u128)], authority: Option<Address>) -> Snapshot {
        let mut state = State::new();
        for (byte, free, reserved) in accounts {
            let info = AccountInfo {
                nonce: 9,
                balance: Amount(*free),
                reserved: Amount(*reserved),
            };
            state.insert(Accounts::key(&Address([*byte; 20])), encode(&info));
        }
        state.insert(governance::Authority::key(), encode(&authority));
        let config = staking::StakingConfig {
            epoch_length_blocks: 300,
            committee_size: 7,
            elections: true,
            ..Default::default()
        };
        state.insert(staking::Config::key(), encode(&config));
        Snapshot {
            parent: GenesisParent {
                chain_id: logos_primitives::ChainId(hash(&[b"parent"])),
                height: 42,
                block_hash: hash(&[b"block"]),
                state_root: hash(&[b"root"]),
            },
            state,
        }
    }

    fn parent_genesis() -> Genesis {
        let text = format!(
            "chain_name = \"parent\"\ntimestamp_ms = 0\n[params]\nmin_fee = \"7\"\n\
             max_block_transactions = 99\n[[validators]]\npublic_key = \"{}\"\n\
             p2p_address = \"127.0.0.1:1\"\n",
            logos_primitives::format_public_key(
                &logos_primitives::PrivateKey::from_seed(1).public_key()
            )
        );
        Genesis::from_toml(&text).unwrap()
    }

    #[test]
    fn the_child_keeps_totals_settings_authority_and_its_parent() {
        let authority = Some(Address([7; 20]));
        let snapshot = snapshot_with(&[(1, 100, 0), (2, 5, 50), (3, 0, 0), (4, 0, 8)], authority);
        let parent = parent_genesis();
        let validators = parent.validators.clone();
        let child = child_genesis(&parent, &snapshot, "child".into(), 1, validators).unwrap();
        // Totals (free + reserved); an empty account is left out; nonces are not carried.
        let balances: Vec<(Address, Amount)> = child.balances().into_iter().collect();
        assert_eq!(
            balances,
            vec![
                (Address([1; 20]), Amount(100)),
                (Address([2; 20]), Amount(55)),
                (Address([4; 20]), Amount(8)),
            ]
        );
        assert_eq!(child.params.min_fee, Amount(7));
        assert_eq!(child.params.max_block_transactions, 99);
        assert_eq!(child.params.privileged_account, authority);
        assert_eq!(child.params.epoch_length_blocks, Some(300));
        assert_eq!(child.params.committee_size, Some(7));
        assert!(child.params.elections);
        assert_eq!(child.parent.as_ref(), Some(&snapshot.parent));
        assert_ne!(child.chain_id(), parent.chain_id());
        // A removed authority stays removed.
        let removed = snapshot_with(&[(1, 100, 0)], None);
        let child = child_genesis(
            &parent,
            &removed,
            "child".into(),
            1,
            parent.validators.clone(),
        )
        .unwrap();
        assert_eq!(child.params.privileged_account, None);
    }

    #[test]
    fn a_state_that_cannot_make_a_genesis_is_refused() {
        let parent = parent_genesis();
        // A balance whose free and reserved parts overflow together.
        let overflow = snapshot_with(&[(1, u128::MAX, 1)], None);
        assert!(matches!(
            child_genesis(&parent, &overflow, "c".into(), 1, parent.validators.clone()),
            Err(SpinoffError::State(_))
        ));
        // Balances whose sum overflows the issuance.
        let issuance = snapshot_with(&[(1, u128::MAX, 0), (2, 1, 0)], None);
        assert!(matches!(
            child_genesis(&parent, &issuance, "c".into(), 1, parent.validators.clone()),
            Err(SpinoffError::State(_))
        ));
        // Garbage under an account key.
        let mut corrupt = snapshot_with(&[], None);
        corrupt
            .state
            .insert(Accounts::key(&Address([1; 20])), vec![1, 2, 3]);
        assert!(matches!(
            child_genesis(&parent, &corrupt, "c".into(), 1, parent.validators.clone()),
            Err(SpinoffError::State(_))
        ));
        // No validators.
        let fine = snapshot_with(&[(1, 1, 0)], None);
        assert!(matches!(
            child_genesis(&parent, &fine, "c".into(), 1, Vec::new()),
            Err(SpinoffError::State(_))
        ));
    }
}
