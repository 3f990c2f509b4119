//! What the pages show, read from finalized state (each read bounded: the newest
//! [`LEASES_MAX`] leases, [`PROVIDERS_MAX`] providers, [`PROPOSALS_MAX`] proposals).

use logos_client::{Client, ClientError};
use logos_primitives::{Address, Amount};
use logos_types::{
    attestation::{Machine, Machines, Reference, References},
    codec::decode,
    dvci::{
        Aggregate, Aggregates, NextProviderId, Provider, ProviderId, Providers, Region, RegionId,
        Regions, Reliabilities, Reliability, ResourceClass,
    },
    governance::{NextProposalId, Proposal, ProposalId, Proposals, Vote, VoteKey, Votes},
    market::{Lease, LeaseId, Leases, NextLeaseId, Role},
    operations::{Environment, EnvironmentId, Environments},
    staking::{Committee, Committees, CurrentEpoch, EpochInfo},
    Call,
};
use std::collections::BTreeMap;

/// Newest leases scanned (for a tenant's list and a provider's earnings).
pub const LEASES_MAX: u64 = 256;
/// Providers listed at most (the first registered).
pub const PROVIDERS_MAX: u64 = 256;
/// Newest proposals listed.
pub const PROPOSALS_MAX: u64 = 64;

/// A lease with its environment.
pub struct LeaseRow {
    /// Lease id.
    pub id: LeaseId,
    /// The lease record.
    pub record: Lease,
    /// Its environment (none once destroyed).
    pub environment: Option<Environment>,
}

/// The newest [`LEASES_MAX`] leases, newest first (all tenants').
pub async fn recent_leases(client: &Client) -> Result<Vec<(LeaseId, Lease)>, ClientError> {
    let (next, _) = client.value::<NextLeaseId>().await?;
    let mut leases = Vec::new();
    for id in (next.get().saturating_sub(LEASES_MAX)..next.get()).rev() {
        if let (Some(record), _) = client.map::<Leases>(&LeaseId(id)).await? {
            leases.push((LeaseId(id), record));
        }
    }
    Ok(leases)
}

/// `tenant`'s leases among the newest, newest first, with their environments.
pub async fn tenant_leases(client: &Client, tenant: Address) -> Result<Vec<LeaseRow>, ClientError> {
    let mut rows = Vec::new();
    for (id, record) in recent_leases(client).await? {
        if record.tenant != tenant {
            continue;
        }
        let (environment, _) = client.map::<Environments>(&EnvironmentId::from(id)).await?;
        rows.push(LeaseRow {
            id,
            record,
            environment,
        });
    }
    Ok(rows)
}

/// A provider's machine as the provider page shows it.
pub struct ProviderRow {
    /// Provider id.
    pub id: ProviderId,
    /// The provider record (owner, endpoint, inventory, class, region, bond, status).
    pub provider: Provider,
    /// Its service record.
    pub reliability: Option<Reliability>,
    /// Its attestation record (none: never registered a TPM).
    pub machine: Option<Machine>,
    /// The reference its machine is held to (none without a machine, or if unreadable).
    pub reference: Option<Reference>,
    /// Its region.
    pub region: Option<Region>,
    /// The host aggregate of its region and class.
    pub aggregate: Option<Aggregate>,
    /// Paid to it as provider in the newest [`LEASES_MAX`] leases, smallest unit.
    pub earnings: Amount,
}

/// Every provider (the first [`PROVIDERS_MAX`]), with what the provider page shows.
pub async fn providers(client: &Client) -> Result<Vec<ProviderRow>, ClientError> {
    let (next, _) = client.value::<NextProviderId>().await?;
    let leases = recent_leases(client).await?;
    let mut rows = Vec::new();
    for id in (0..next.get().min(PROVIDERS_MAX)).map(ProviderId) {
        let (Some(provider), _) = client.map::<Providers>(&id).await? else {
            continue;
        };
        let earnings = leases
            .iter()
            .flat_map(|(_, lease)| lease.payouts.iter())
            .filter(|payout| payout.role == Role::Provider && payout.account == provider.owner)
            .fold(0u128, |sum, payout| sum.saturating_add(payout.amount.0));
        let machine = client.map::<Machines>(&id).await?.0;
        let reference = match &machine {
            Some(machine) => client
                .map::<References>(&machine.reference)
                .await
                .ok()
                .and_then(|(reference, _)| reference),
            None => None,
        };
        rows.push(ProviderRow {
            id,
            reliability: client.map::<Reliabilities>(&id).await?.0,
            machine,
            reference,
            region: client.map::<Regions>(&provider.region).await?.0,
            aggregate: client
                .map::<Aggregates>(&(provider.region, provider.class))
                .await?
                .0,
            earnings: Amount(earnings),
            provider,
        });
    }
    Ok(rows)
}

/// The network page's chain figures.
pub struct NetworkView {
    /// The current epoch.
    pub epoch: EpochInfo,
    /// Its committee (none before staking fixed one).
    pub committee: Option<Committee>,
    /// Capacity by region and class, from the providers' regions.
    pub capacity: BTreeMap<(RegionId, ResourceClass), (Option<Region>, Aggregate)>,
}

/// The epoch, its committee and the capacity of the regions `providers` are in.
pub async fn network(
    client: &Client,
    providers: &[ProviderRow],
) -> Result<NetworkView, ClientError> {
    let (epoch, _) = client.value::<CurrentEpoch>().await?;
    let (committee, _) = client.map::<Committees>(&epoch.epoch).await?;
    let mut capacity = BTreeMap::new();
    for row in providers {
        let key = (row.provider.region, row.provider.class);
        if let (Some(aggregate), false) = (&row.aggregate, capacity.contains_key(&key)) {
            capacity.insert(key, (row.region.clone(), aggregate.clone()));
        }
    }
    Ok(NetworkView {
        epoch,
        committee,
        capacity,
    })
}

/// A proposal as the governance page shows it.
pub struct ProposalRow {
    /// Proposal id.
    pub id: ProposalId,
    /// The record (status, tally, heights).
    pub proposal: Proposal,
    /// What it would call, decoded (none if it does not decode).
    pub call: Option<Call>,
    /// The console's account's vote on it.
    pub my_vote: Option<Vote>,
    /// All active stake now (`staking::TotalActive`): the quorum's base if it were tallied
    /// now (the tally records its own once voting ends).
    pub active_now: Amount,
}

/// The newest [`PROPOSALS_MAX`] proposals, newest first, with `voter`'s votes.
pub async fn proposals(
    client: &Client,
    voter: Option<Address>,
) -> Result<Vec<ProposalRow>, ClientError> {
    let (next, _) = client.value::<NextProposalId>().await?;
    let (active_now, _) = client.value::<logos_types::staking::TotalActive>().await?;
    let mut rows = Vec::new();
    for id in (next.get().saturating_sub(PROPOSALS_MAX)..next.get()).rev() {
        let id = ProposalId(id);
        let (Some(proposal), _) = client.map::<Proposals>(&id).await? else {
            continue;
        };
        let my_vote = match voter {
            Some(voter) => {
                let key = VoteKey {
                    proposal: id,
                    voter,
                };
                client.map::<Votes>(&key).await?.0
            }
            None => None,
        };
        rows.push(ProposalRow {
            id,
            call: decode::<Call>(&proposal.call).ok(),
            proposal,
            my_vote,
            active_now,
        });
    }
    Ok(rows)
}
