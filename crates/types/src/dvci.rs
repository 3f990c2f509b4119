//! Types of `dvci` (module index 1): regions, providers and host aggregates of the Distributed
//! Virtual Computing Infrastructure (seed `002`: DVCI, DRN, host aggregates with a backup
//! buffer).
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Regions`] | [`RegionId`] | [`Region`] |
//! | 1 [`Providers`] | [`ProviderId`] | [`Provider`] |
//! | 2 [`NextProviderId`] | | [`ProviderId`] |
//! | 3 [`Aggregates`] | ([`RegionId`], [`ResourceClass`]) | [`Aggregate`] |
//! | 4 [`BufferPercent`] | | u8, default [`DEFAULT_BUFFER_PERCENT`] |
//! | 5 [`MinimumBond`] | | [`Amount`], default [`DEFAULT_MINIMUM_BOND`] |
//! | 6 [`Reliabilities`] | [`ProviderId`] | [`Reliability`] (absent: a new provider) |
//! | 7 [`Unattested`] | | bool: providers need no attestation (genesis `unattested`), default false |
//! | 8 [`Attested`] | [`ProviderId`] | the last height its machine's last verified report covers (its next deadline; written through `Dvci::set_attested` by `attestation`) |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterProvider`] | anyone (becomes the owner; the bond is reserved) |
//! | 1 | [`Call::DeregisterProvider`] | owner; nothing placed on it |
//! | 2 | [`Call::SetProviderStatus`] | privileged |
//! | 3 | [`Call::CreateRegion`] | privileged |
//! | 4 | [`Call::SetBufferPercent`] | privileged |
//! | 5 | [`Call::SetMinimumBond`] | privileged |
//! | 6 | [`Call::SetAgentKey`] | owner |

use crate::{
    calls,
    codec::{BoundedString, BoundedVec},
    errors, events, record, storage,
};
use logos_primitives::{Address, Amount, NodeKey};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "dvci";
/// Module index of `dvci`: storage prefix, call routing, error index.
pub const INDEX: u8 = 1;

/// Longest provider (or environment) endpoint, bytes.
pub const ENDPOINT_MAX_BYTES: usize = 128;
/// Longest region name, bytes.
pub const REGION_NAME_MAX_BYTES: usize = 32;
/// Most providers in one host aggregate.
pub const AGGREGATE_PROVIDERS_MAX: usize = 1_024;
/// Backup buffer of every host aggregate unless changed, percent.
pub const DEFAULT_BUFFER_PERCENT: u8 = 30;
/// Minimum provider bond unless changed, smallest unit.
pub const DEFAULT_MINIMUM_BOND: Amount = Amount(1_000_000);
/// Largest configurable buffer, percent.
pub const BUFFER_PERCENT_MAX: u8 = 90;

/// `ip:port` (or `host:port`) where something listens.
pub type Endpoint = BoundedString<ENDPOINT_MAX_BYTES>;

id_type!(
    /// Identifies a global region (one DVCI per region).
    RegionId(u16)
);
id_type!(
    /// Identifies a provider (assigned in registration order from 0).
    ProviderId(u64)
);

/// A provider's resource class. Wire: one byte, the index.
#[record]
#[derive(Copy, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceClass {
    /// VMs on KVM.
    #[index(0)]
    ComputeKvm,
    /// Sandboxed containers on a hosted machine.
    #[index(1)]
    ComputeHosted,
    /// Machines with GPUs.
    #[index(2)]
    Gpu,
    /// Storage.
    #[index(3)]
    Storage,
}

impl std::str::FromStr for ResourceClass {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "compute-kvm" => Ok(Self::ComputeKvm),
            "compute-hosted" => Ok(Self::ComputeHosted),
            "gpu" => Ok(Self::Gpu),
            "storage" => Ok(Self::Storage),
            other => Err(format!(
                "unknown class {other:?} (compute-kvm, compute-hosted, gpu, storage)"
            )),
        }
    }
}

/// An amount of machine resources.
#[record]
#[derive(Copy, Default)]
pub struct Resources {
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Disk, GiB.
    pub disk_gib: u64,
    /// GPUs.
    pub gpus: u32,
}

impl Resources {
    /// Combines `self` and `other` dimension by dimension (`None` if any dimension is).
    fn zip(
        &self,
        other: &Resources,
        narrow: impl Fn(u32, u32) -> Option<u32>,
        wide: impl Fn(u64, u64) -> Option<u64>,
    ) -> Option<Resources> {
        Some(Resources {
            vcpu: narrow(self.vcpu, other.vcpu)?,
            memory_mib: wide(self.memory_mib, other.memory_mib)?,
            disk_gib: wide(self.disk_gib, other.disk_gib)?,
            gpus: narrow(self.gpus, other.gpus)?,
        })
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        self.zip(other, u32::checked_add, u64::checked_add)
    }

    /// `self - other`, or `None` if any dimension would go negative.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        self.zip(other, u32::checked_sub, u64::checked_sub)
    }

    /// `self - other` per dimension, floored at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        let floor32 = |a: u32, b: u32| Some(a.saturating_sub(b));
        let floor64 = |a: u64, b: u64| Some(a.saturating_sub(b));
        self.zip(other, floor32, floor64).unwrap_or_default()
    }

    /// True if every dimension of `self` is at most that of `other`.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.vcpu <= other.vcpu
            && self.memory_mib <= other.memory_mib
            && self.disk_gib <= other.disk_gib
            && self.gpus <= other.gpus
    }

    /// Each dimension scaled by `percent` / 100 (at most 100), rounded down (integers only).
    pub fn percent(&self, percent: u8) -> Resources {
        let percent = percent.min(100);
        let scale64 =
            |value: u64| (u128::from(value).saturating_mul(u128::from(percent)) / 100) as u64;
        let scale32 =
            |value: u32| (u64::from(value).saturating_mul(u64::from(percent)) / 100) as u32;
        Resources {
            vcpu: scale32(self.vcpu),
            memory_mib: scale64(self.memory_mib),
            disk_gib: scale64(self.disk_gib),
            gpus: scale32(self.gpus),
        }
    }

    /// True if all dimensions are zero.
    pub fn is_zero(&self) -> bool {
        *self == Resources::default()
    }
}

/// Where a provider stands. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Registered, not yet admitted; receives no environments.
    #[index(0)]
    Pending,
    /// Admitted; its inventory counts toward its host aggregate.
    #[index(1)]
    Active,
    /// Excluded (e.g. failed integrity); receives no environments.
    #[index(2)]
    Excluded,
}

/// A registered provider (distributed resource node).
#[record]
pub struct Provider {
    /// The account that registered it and owns it.
    pub owner: Address,
    /// Where its agent listens (e.g. `127.0.0.1:7000`).
    pub endpoint: Endpoint,
    /// What it offers.
    pub inventory: Resources,
    /// Its resource class.
    pub class: ResourceClass,
    /// Its region.
    pub region: RegionId,
    /// Tokens reserved from the owner while registered, smallest unit.
    pub bond: Amount,
    /// Its status.
    pub status: ProviderStatus,
    /// Resources placed on it.
    pub allocated: Resources,
    /// The ed25519 key its agent signs what it observes with (stats, observations), set by
    /// the owner with [`Call::SetAgentKey`]; none until then.
    pub agent_key: Option<NodeKey>,
}

impl Provider {
    /// The account of its agent key: the agent on the machine, which may act for the machine
    /// (`attestation`); none without a usable agent key.
    pub fn agent_account(&self) -> Option<Address> {
        let key = self.agent_key?.public_key().ok()?;
        Some(Address::from_public_key(&key))
    }
}

/// A provider's service record, kept by the chain and used by placement: blocks its leased
/// environments were verified or not, and faults a quorum of cross-checkers observed (its agent
/// unreachable, or a workload it says runs dead at its endpoint).
#[record]
#[derive(Default, Copy)]
pub struct Reliability {
    /// Lease-blocks in which the environment was `Verified`.
    pub verified_blocks: u64,
    /// Lease-blocks in which it was not (pending, failed, unverified, contradicted).
    pub unverified_blocks: u64,
    /// Faults blamed on the provider by a quorum of cross-checkers.
    pub faults: u64,
}

/// Weight of one fault in [`Reliability::score_permille`], in lease-blocks.
pub const FAULT_WEIGHT_BLOCKS: u64 = 100;
/// Lease-blocks of prior evidence every provider starts with, half of them verified: a new
/// provider scores 500 ‰ and earns more by serving, so a good record always ranks above a
/// fresh registration (which costs a new bond; a provider below 500 ‰ can get back to it so).
pub const PRIOR_BLOCKS: u64 = 100;

impl Reliability {
    /// Share of good service, per mille: `(verified + PRIOR_BLOCKS / 2) / (verified +
    /// unverified + FAULT_WEIGHT_BLOCKS × faults + PRIOR_BLOCKS)`.
    pub fn score_permille(&self) -> u64 {
        let penalty = self.faults.saturating_mul(FAULT_WEIGHT_BLOCKS);
        let total = self
            .verified_blocks
            .saturating_add(self.unverified_blocks)
            .saturating_add(penalty)
            .saturating_add(PRIOR_BLOCKS);
        // Below 2^64 / 1000 blocks the product cannot saturate; beyond, the score only flattens.
        self.verified_blocks
            .saturating_add(PRIOR_BLOCKS / 2)
            .saturating_mul(1_000)
            .checked_div(total)
            .unwrap_or(0)
    }
}

/// A host aggregate: the active providers of one class in one region.
#[record]
#[derive(Default)]
pub struct Aggregate {
    /// Sum of the active providers' inventories.
    pub capacity: Resources,
    /// Sum of what is placed on them.
    pub allocated: Resources,
    /// The active providers, ascending.
    pub providers: BoundedVec<ProviderId, AGGREGATE_PROVIDERS_MAX>,
}

/// A region's record.
#[record]
pub struct Region {
    /// Human-readable name, e.g. `eu-central`.
    pub name: BoundedString<REGION_NAME_MAX_BYTES>,
}

/// Calls of `dvci`.
#[calls]
pub enum Call {
    /// Register the sender's machine as a provider, reserving `bond` from its balance.
    #[index(0)]
    RegisterProvider {
        /// Agent endpoint.
        endpoint: Endpoint,
        /// What it offers.
        inventory: Resources,
        /// Its class.
        class: ResourceClass,
        /// Its region (must exist).
        region: RegionId,
        /// Bond, at least the configured minimum.
        bond: Amount,
    },
    /// (owner) Deregister an unused provider and release its bond.
    #[index(1)]
    DeregisterProvider {
        /// The provider.
        provider: ProviderId,
    },
    /// (privileged) Set a provider's status.
    #[index(2)]
    SetProviderStatus {
        /// The provider.
        provider: ProviderId,
        /// New status.
        status: ProviderStatus,
    },
    /// (privileged) Create a region.
    #[index(3)]
    CreateRegion {
        /// Its id.
        region: RegionId,
        /// Its name.
        name: BoundedString<REGION_NAME_MAX_BYTES>,
    },
    /// (privileged) Set the backup buffer, percent of each aggregate's capacity.
    #[index(4)]
    SetBufferPercent {
        /// 0 to [`BUFFER_PERCENT_MAX`].
        percent: u8,
    },
    /// (privileged) Set the minimum provider bond.
    #[index(5)]
    SetMinimumBond {
        /// Smallest unit.
        bond: Amount,
    },
    /// (owner) Set the key the provider's agent signs with (a valid ed25519 point, not of
    /// small order).
    #[index(6)]
    SetAgentKey {
        /// The provider.
        provider: ProviderId,
        /// The agent's public key.
        key: NodeKey,
    },
}

/// Events of `dvci`.
#[events]
pub enum Event {
    /// A provider registered (status pending).
    ProviderRegistered {
        /// Its id.
        provider: ProviderId,
        /// Its owner.
        owner: Address,
        /// Its region.
        region: RegionId,
        /// Its class.
        class: ResourceClass,
    },
    /// A provider's status changed.
    ProviderStatusChanged {
        /// The provider.
        provider: ProviderId,
        /// The new status.
        status: ProviderStatus,
    },
    /// A provider deregistered and its bond was released.
    ProviderDeregistered {
        /// The provider.
        provider: ProviderId,
    },
    /// A region was created.
    RegionCreated {
        /// Its id.
        region: RegionId,
    },
    /// The backup buffer changed.
    BufferChanged {
        /// New percent.
        percent: u8,
    },
    /// The minimum bond changed.
    MinimumBondChanged {
        /// New minimum.
        bond: Amount,
    },
    /// A provider's agent key changed.
    AgentKeySet {
        /// The provider.
        provider: ProviderId,
        /// The new key.
        key: NodeKey,
    },
}

/// Errors of `dvci`.
#[errors]
pub enum Error {
    /// Only the provider's owner may make this call.
    #[index(0)]
    #[error("not the provider's owner")]
    NotOwner,
    /// No such region.
    #[index(1)]
    #[error("unknown region {0}")]
    UnknownRegion(RegionId),
    /// The region exists already.
    #[index(2)]
    #[error("region {0} exists")]
    RegionExists(RegionId),
    /// No such provider.
    #[index(3)]
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// The bond is below the minimum.
    #[index(4)]
    #[error("bond {offered} below the minimum {minimum}")]
    BondTooLow {
        /// Offered.
        offered: Amount,
        /// Required.
        minimum: Amount,
    },
    /// The inventory is empty.
    #[index(5)]
    #[error("empty inventory")]
    EmptyInventory,
    /// An endpoint or name is empty.
    #[index(6)]
    #[error("empty endpoint or name")]
    EmptyText,
    /// The provider still hosts environments.
    #[index(7)]
    #[error("provider {0} still hosts environments")]
    ProviderBusy(ProviderId),
    /// The host aggregate holds its maximum number of providers.
    #[index(8)]
    #[error("host aggregate full ({AGGREGATE_PROVIDERS_MAX} providers)")]
    AggregateFull,
    /// A capacity sum would overflow.
    #[index(9)]
    #[error("capacity overflow")]
    CapacityOverflow,
    /// The buffer percent is above [`BUFFER_PERCENT_MAX`].
    #[index(10)]
    #[error("buffer percent {0} above {BUFFER_PERCENT_MAX}")]
    BufferTooLarge(u8),
    /// Provider ids are used up.
    #[index(11)]
    #[error("no provider ids left")]
    IdsExhausted,
    /// The agent key is not a usable ed25519 public key.
    #[index(12)]
    #[error("agent key {0} is not a usable ed25519 public key")]
    InvalidAgentKey(NodeKey),
}

storage! {
    module = INDEX;
    /// Regions by id.
    pub Regions: map(0) RegionId => Region;
    /// Providers by id.
    pub Providers: map(1) ProviderId => Provider;
    /// The id the next registered provider gets.
    pub NextProviderId: value(2) ProviderId;
    /// Host aggregates by region and class.
    pub Aggregates: map(3) (RegionId, ResourceClass) => Aggregate;
    /// The backup buffer of every aggregate, percent.
    pub BufferPercent: value(4) u8 = DEFAULT_BUFFER_PERCENT;
    /// The minimum provider bond, smallest unit.
    pub MinimumBond: value(5) Amount = DEFAULT_MINIMUM_BOND;
    /// Providers' service records (see [`Reliability`]).
    pub Reliabilities: map(6) ProviderId => Reliability;
    /// Providers take leases without attestation (a genesis `unattested`); false by default,
    /// so a chain requires attested machines unless its genesis says otherwise.
    pub Unattested: value(7) bool;
    /// Providers whose machine is attested (`attestation` keeps it through
    /// `Dvci::set_attested`), with the last height their last verified report covers:
    /// placement takes only these, until then, unless [`Unattested`].
    pub Attested: map(8) ProviderId => u64;
}
