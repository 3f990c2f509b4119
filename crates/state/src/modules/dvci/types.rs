//! Types of the `dvci` module.

use crate::{
    codec_u8_enum,
    storage::{read_text, text_size, write_text},
};
use bytes::BufMut;
use commonware_codec::{
    Buf, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write,
};
use logos_primitives::{Address, Amount};

/// Longest provider endpoint in bytes.
pub const ENDPOINT_MAX_BYTES: usize = 128;
/// Longest region name in bytes.
pub const REGION_NAME_MAX_BYTES: usize = 32;
/// Most providers in one host aggregate.
pub const AGGREGATE_PROVIDERS_MAX: usize = 1_024;

/// Identifies a global region (one DVCI per region).
pub type RegionId = u16;
/// Identifies a provider (assigned in registration order from 0).
pub type ProviderId = u64;

/// A provider's resource class. Wire: one byte, the index below.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceClass {
    /// 0: VMs on KVM.
    ComputeKvm,
    /// 1: sandboxed containers on a hosted machine.
    ComputeHosted,
    /// 2: machines with GPUs.
    Gpu,
    /// 3: storage.
    Storage,
}

impl ResourceClass {
    /// The wire index.
    pub fn index(self) -> u8 {
        self as u8
    }
}

codec_u8_enum!(ResourceClass {
    ComputeKvm = 0,
    ComputeHosted = 1,
    Gpu = 2,
    Storage = 3
});

/// An amount of machine resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            vcpu: self.vcpu.checked_add(other.vcpu)?,
            memory_mib: self.memory_mib.checked_add(other.memory_mib)?,
            disk_gib: self.disk_gib.checked_add(other.disk_gib)?,
            gpus: self.gpus.checked_add(other.gpus)?,
        })
    }

    /// `self - other`, or `None` if any dimension would go negative.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            vcpu: self.vcpu.checked_sub(other.vcpu)?,
            memory_mib: self.memory_mib.checked_sub(other.memory_mib)?,
            disk_gib: self.disk_gib.checked_sub(other.disk_gib)?,
            gpus: self.gpus.checked_sub(other.gpus)?,
        })
    }

    /// True if every dimension of `self` is at most that of `other`.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.vcpu <= other.vcpu
            && self.memory_mib <= other.memory_mib
            && self.disk_gib <= other.disk_gib
            && self.gpus <= other.gpus
    }

    /// Each dimension scaled by `percent` / 100, rounded down (integer arithmetic only).
    pub fn percent(&self, percent: u8) -> Resources {
        let scale64 = |value: u64| (value as u128 * percent as u128 / 100) as u64;
        let scale32 = |value: u32| (value as u64 * percent as u64 / 100) as u32;
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

impl Write for Resources {
    fn write(&self, buf: &mut impl BufMut) {
        self.vcpu.write(buf);
        self.memory_mib.write(buf);
        self.disk_gib.write(buf);
        self.gpus.write(buf);
    }
}

impl Read for Resources {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            vcpu: u32::read(buf)?,
            memory_mib: u64::read(buf)?,
            disk_gib: u64::read(buf)?,
            gpus: u32::read(buf)?,
        })
    }
}

impl FixedSize for Resources {
    const SIZE: usize = 4 + 8 + 8 + 4;
}

/// Where a provider stands. Wire: one byte, the index below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// 0: registered, not yet admitted; receives no environments.
    Pending,
    /// 1: admitted; its inventory counts toward its host aggregate.
    Active,
    /// 2: excluded (e.g. failed integrity); receives no environments.
    Excluded,
}

codec_u8_enum!(ProviderStatus {
    Pending = 0,
    Active = 1,
    Excluded = 2
});

/// A registered provider (distributed resource node).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provider {
    /// The account that registered it and owns it.
    pub owner: Address,
    /// Where its agent listens (e.g. `127.0.0.1:7000`).
    pub endpoint: String,
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
}

impl Write for Provider {
    fn write(&self, buf: &mut impl BufMut) {
        self.owner.write(buf);
        write_text(&self.endpoint, buf);
        self.inventory.write(buf);
        self.class.write(buf);
        self.region.write(buf);
        self.bond.write(buf);
        self.status.write(buf);
        self.allocated.write(buf);
    }
}

impl EncodeSize for Provider {
    fn encode_size(&self) -> usize {
        Address::SIZE + text_size(&self.endpoint) + 2 * Resources::SIZE + 1 + 2 + Amount::SIZE + 1
    }
}

impl Read for Provider {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            owner: Address::read(buf)?,
            endpoint: read_text(buf, ENDPOINT_MAX_BYTES)?,
            inventory: Resources::read(buf)?,
            class: ResourceClass::read(buf)?,
            region: RegionId::read(buf)?,
            bond: Amount::read(buf)?,
            status: ProviderStatus::read(buf)?,
            allocated: Resources::read(buf)?,
        })
    }
}

/// A host aggregate: the active providers of one class in one region.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Aggregate {
    /// Sum of the active providers' inventories.
    pub capacity: Resources,
    /// Sum of what is placed on them.
    pub allocated: Resources,
    /// The active providers, ascending.
    pub providers: Vec<ProviderId>,
}

impl Write for Aggregate {
    fn write(&self, buf: &mut impl BufMut) {
        self.capacity.write(buf);
        self.allocated.write(buf);
        self.providers.write(buf);
    }
}

impl EncodeSize for Aggregate {
    fn encode_size(&self) -> usize {
        2 * Resources::SIZE + self.providers.encode_size()
    }
}

impl Read for Aggregate {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            capacity: Resources::read(buf)?,
            allocated: Resources::read(buf)?,
            providers: Vec::<ProviderId>::read_cfg(
                buf,
                &(RangeCfg::new(0..=AGGREGATE_PROVIDERS_MAX), ()),
            )?,
        })
    }
}

/// A region's record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Region {
    /// Human-readable name, e.g. `eu-central`.
    pub name: String,
}

impl Write for Region {
    fn write(&self, buf: &mut impl BufMut) {
        write_text(&self.name, buf);
    }
}

impl EncodeSize for Region {
    fn encode_size(&self) -> usize {
        text_size(&self.name)
    }
}

impl Read for Region {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            name: read_text(buf, REGION_NAME_MAX_BYTES)?,
        })
    }
}

/// Calls of the `dvci` module (call index first on the wire).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// 0: register the sender's machine as a provider, reserving `bond` from its balance.
    RegisterProvider {
        /// Agent endpoint.
        endpoint: String,
        /// What it offers.
        inventory: Resources,
        /// Its class.
        class: ResourceClass,
        /// Its region (must exist).
        region: RegionId,
        /// Bond, at least the configured minimum.
        bond: Amount,
    },
    /// 1 (owner): deregister an unused provider and release its bond.
    DeregisterProvider {
        /// The provider.
        provider: ProviderId,
    },
    /// 2 (privileged): set a provider's status.
    SetProviderStatus {
        /// The provider.
        provider: ProviderId,
        /// New status.
        status: ProviderStatus,
    },
    /// 3 (privileged): create a region.
    CreateRegion {
        /// Its id.
        region: RegionId,
        /// Its name.
        name: String,
    },
    /// 4 (privileged): set the backup buffer, percent of each aggregate's capacity.
    SetBufferPercent {
        /// 0 to 90.
        percent: u8,
    },
    /// 5 (privileged): set the minimum provider bond.
    SetMinimumBond {
        /// Smallest unit.
        bond: Amount,
    },
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::RegisterProvider {
                endpoint,
                inventory,
                class,
                region,
                bond,
            } => {
                0u8.write(buf);
                write_text(endpoint, buf);
                inventory.write(buf);
                class.write(buf);
                region.write(buf);
                bond.write(buf);
            }
            Call::DeregisterProvider { provider } => {
                1u8.write(buf);
                provider.write(buf);
            }
            Call::SetProviderStatus { provider, status } => {
                2u8.write(buf);
                provider.write(buf);
                status.write(buf);
            }
            Call::CreateRegion { region, name } => {
                3u8.write(buf);
                region.write(buf);
                write_text(name, buf);
            }
            Call::SetBufferPercent { percent } => {
                4u8.write(buf);
                percent.write(buf);
            }
            Call::SetMinimumBond { bond } => {
                5u8.write(buf);
                bond.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + match self {
            Call::RegisterProvider { endpoint, .. } => {
                text_size(endpoint) + Resources::SIZE + 1 + 2 + Amount::SIZE
            }
            Call::DeregisterProvider { .. } => 8,
            Call::SetProviderStatus { .. } => 8 + 1,
            Call::CreateRegion { name, .. } => 2 + text_size(name),
            Call::SetBufferPercent { .. } => 1,
            Call::SetMinimumBond { .. } => Amount::SIZE,
        }
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Call::RegisterProvider {
                endpoint: read_text(buf, ENDPOINT_MAX_BYTES)?,
                inventory: Resources::read(buf)?,
                class: ResourceClass::read(buf)?,
                region: RegionId::read(buf)?,
                bond: Amount::read(buf)?,
            }),
            1 => Ok(Call::DeregisterProvider {
                provider: ProviderId::read(buf)?,
            }),
            2 => Ok(Call::SetProviderStatus {
                provider: ProviderId::read(buf)?,
                status: ProviderStatus::read(buf)?,
            }),
            3 => Ok(Call::CreateRegion {
                region: RegionId::read(buf)?,
                name: read_text(buf, REGION_NAME_MAX_BYTES)?,
            }),
            4 => Ok(Call::SetBufferPercent {
                percent: u8::read(buf)?,
            }),
            5 => Ok(Call::SetMinimumBond {
                bond: Amount::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// Events of the `dvci` module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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
}

/// Errors of the `dvci` module.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// Only the privileged origin may make this call.
    #[error("privileged call from an unprivileged account")]
    NotPrivileged,
    /// Only the provider's owner may make this call.
    #[error("not the provider's owner")]
    NotOwner,
    /// No such region.
    #[error("unknown region {0}")]
    UnknownRegion(RegionId),
    /// The region exists already.
    #[error("region {0} exists")]
    RegionExists(RegionId),
    /// No such provider.
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// The bond is below the minimum.
    #[error("bond {offered} below the minimum {minimum}")]
    BondTooLow {
        /// Offered.
        offered: Amount,
        /// Required.
        minimum: Amount,
    },
    /// The owner cannot reserve the bond.
    #[error("cannot reserve the bond: {0}")]
    BondUnpaid(String),
    /// The inventory is empty.
    #[error("empty inventory")]
    EmptyInventory,
    /// An endpoint or name is empty.
    #[error("empty endpoint or name")]
    EmptyText,
    /// The provider still hosts environments.
    #[error("provider {0} still hosts environments")]
    ProviderBusy(ProviderId),
    /// The host aggregate holds its maximum number of providers.
    #[error("host aggregate full ({AGGREGATE_PROVIDERS_MAX} providers)")]
    AggregateFull,
    /// A capacity sum would overflow.
    #[error("capacity overflow")]
    CapacityOverflow,
    /// The buffer percent is above 90.
    #[error("buffer percent {0} above 90")]
    BufferTooLarge(u8),
}
