//! Types of the `market` module.

use crate::{
    codec_u8_enum,
    modules::dvci::{ProviderId, RegionId, ResourceClass, Resources},
    storage::{read_text, text_size, write_text},
};
use bytes::BufMut;
use commonware_codec::{
    Buf, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write,
};
use logos_primitives::{Address, Amount};

/// Longest product or template name in bytes.
pub const NAME_MAX_BYTES: usize = 64;
/// Longest image reference or command argument in bytes.
pub const ARGUMENT_MAX_BYTES: usize = 256;
/// Most command arguments of a workload.
pub const ARGUMENTS_MAX: usize = 16;
/// Most ports a workload declares.
pub const PORTS_MAX: usize = 16;

/// Identifies a product (machine type).
pub type ProductId = u32;
/// Identifies a template.
pub type TemplateId = u32;
/// Identifies a lease (assigned in creation order from 0).
pub type LeaseId = u64;

/// A machine type of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Product {
    /// Name, e.g. `small`.
    pub name: String,
    /// What an environment of this product gets.
    pub resources: Resources,
    /// Where it runs.
    pub class: ResourceClass,
    /// Compute units it is billed for per block.
    pub compute_units: u32,
}

impl Write for Product {
    fn write(&self, buf: &mut impl BufMut) {
        write_text(&self.name, buf);
        self.resources.write(buf);
        self.class.write(buf);
        self.compute_units.write(buf);
    }
}

impl EncodeSize for Product {
    fn encode_size(&self) -> usize {
        text_size(&self.name) + Resources::SIZE + ResourceClass::SIZE + 4
    }
}

impl Read for Product {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            name: read_text(buf, NAME_MAX_BYTES)?,
            resources: Resources::read(buf)?,
            class: ResourceClass::read(buf)?,
            compute_units: u32::read(buf)?,
        })
    }
}

/// What runs in an environment: an image or command, its ports and its health check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    /// Image reference (empty for a plain command).
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// Ports reachable from outside the environment.
    pub ports: Vec<u16>,
    /// Port probed for health (a TCP connect).
    pub health_port: u16,
}

fn write_list(items: &[String], buf: &mut impl BufMut) {
    (items.len() as u8).write(buf);
    for item in items {
        write_text(item, buf);
    }
}

fn read_list(buf: &mut impl Buf) -> Result<Vec<String>, CodecError> {
    let count = u8::read(buf)? as usize;
    if count > ARGUMENTS_MAX {
        return Err(CodecError::InvalidLength(count));
    }
    (0..count)
        .map(|_| read_text(buf, ARGUMENT_MAX_BYTES))
        .collect()
}

impl Write for Workload {
    fn write(&self, buf: &mut impl BufMut) {
        write_text(&self.image, buf);
        write_list(&self.command, buf);
        self.ports.write(buf);
        self.health_port.write(buf);
    }
}

impl EncodeSize for Workload {
    fn encode_size(&self) -> usize {
        text_size(&self.image)
            + 1
            + self
                .command
                .iter()
                .map(|item| text_size(item))
                .sum::<usize>()
            + self.ports.encode_size()
            + 2
    }
}

impl Read for Workload {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            image: read_text(buf, ARGUMENT_MAX_BYTES)?,
            command: read_list(buf)?,
            ports: Vec::<u16>::read_cfg(buf, &(RangeCfg::new(0..=PORTS_MAX), ()))?,
            health_port: u16::read(buf)?,
        })
    }
}

/// A product plus a workload, e.g. "Logos full node".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Template {
    /// Name.
    pub name: String,
    /// The machine type.
    pub product: ProductId,
    /// What runs.
    pub workload: Workload,
}

impl Write for Template {
    fn write(&self, buf: &mut impl BufMut) {
        write_text(&self.name, buf);
        self.product.write(buf);
        self.workload.write(buf);
    }
}

impl EncodeSize for Template {
    fn encode_size(&self) -> usize {
        text_size(&self.name) + 4 + self.workload.encode_size()
    }
}

impl Read for Template {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            name: read_text(buf, NAME_MAX_BYTES)?,
            product: ProductId::read(buf)?,
            workload: Workload::read(buf)?,
        })
    }
}

/// Why a lease ended. Wire: one byte, the index below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// 0: the tenant closed it.
    ClosedByTenant,
    /// 1: its escrow could not pay the next block.
    EscrowExhausted,
}
codec_u8_enum!(CloseReason {
    ClosedByTenant = 0,
    EscrowExhausted = 1
});

/// A lease. `escrow` is reserved on the tenant's account and pays `rate` at the end of every
/// block from the one that created it until it is closed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// Who pays.
    pub tenant: Address,
    /// What was leased.
    pub template: TemplateId,
    /// Where it was placed.
    pub provider: ProviderId,
    /// Region of the provider.
    pub region: RegionId,
    /// Resources held on the provider.
    pub resources: Resources,
    /// Price per block, smallest unit.
    pub rate: Amount,
    /// Unspent escrow, smallest unit.
    pub escrow: Amount,
    /// Height of the block that created it.
    pub created_at: u64,
    /// Blocks billed so far.
    pub blocks_billed: u64,
    /// Height and reason of its end, if closed.
    pub closed: Option<(u64, CloseReason)>,
}

impl Write for Lease {
    fn write(&self, buf: &mut impl BufMut) {
        self.tenant.write(buf);
        self.template.write(buf);
        self.provider.write(buf);
        self.region.write(buf);
        self.resources.write(buf);
        self.rate.write(buf);
        self.escrow.write(buf);
        self.created_at.write(buf);
        self.blocks_billed.write(buf);
        self.closed.write(buf);
    }
}

impl EncodeSize for Lease {
    fn encode_size(&self) -> usize {
        Address::SIZE
            + 4
            + 8
            + 2
            + Resources::SIZE
            + 2 * Amount::SIZE
            + 8
            + 8
            + self.closed.encode_size()
    }
}

impl Read for Lease {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let tenant = Address::read(buf)?;
        let template = TemplateId::read(buf)?;
        let provider = ProviderId::read(buf)?;
        let region = RegionId::read(buf)?;
        let resources = Resources::read(buf)?;
        let rate = Amount::read(buf)?;
        let escrow = Amount::read(buf)?;
        let created_at = u64::read(buf)?;
        let blocks_billed = u64::read(buf)?;
        let closed = Option::<(u64, CloseReason)>::read_cfg(buf, &((), ()))?;
        Ok(Self {
            tenant,
            template,
            provider,
            region,
            resources,
            rate,
            escrow,
            created_at,
            blocks_billed,
            closed,
        })
    }
}

/// Calls of the `market` module (call index first on the wire).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// 0 (privileged): create or replace a product.
    SetProduct {
        /// Its id.
        id: ProductId,
        /// The product.
        product: Product,
    },
    /// 1 (privileged): create or replace a template.
    SetTemplate {
        /// Its id.
        id: TemplateId,
        /// The template.
        template: Template,
    },
    /// 2 (privileged): set the price of a compute unit per block for a class.
    SetPrice {
        /// The class.
        class: ResourceClass,
        /// Smallest unit per compute unit per block.
        price: Amount,
    },
    /// 3: lease `template` in `region` for `blocks` blocks, escrowing the whole price.
    CreateLease {
        /// What to lease.
        template: TemplateId,
        /// Where.
        region: RegionId,
        /// How many blocks to pay for up front (at least one).
        blocks: u64,
    },
    /// 4 (tenant): pay for `blocks` more blocks.
    ExtendLease {
        /// The lease.
        lease: LeaseId,
        /// Additional blocks.
        blocks: u64,
    },
    /// 5 (tenant): close the lease now and get the unspent escrow back.
    CloseLease {
        /// The lease.
        lease: LeaseId,
    },
    /// 6 (privileged): set the community share of lease payments, percent.
    SetCommunityShare {
        /// 0 to 100.
        percent: u8,
    },
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::SetProduct { id, product } => {
                0u8.write(buf);
                id.write(buf);
                product.write(buf);
            }
            Call::SetTemplate { id, template } => {
                1u8.write(buf);
                id.write(buf);
                template.write(buf);
            }
            Call::SetPrice { class, price } => {
                2u8.write(buf);
                class.write(buf);
                price.write(buf);
            }
            Call::CreateLease {
                template,
                region,
                blocks,
            } => {
                3u8.write(buf);
                template.write(buf);
                region.write(buf);
                blocks.write(buf);
            }
            Call::ExtendLease { lease, blocks } => {
                4u8.write(buf);
                lease.write(buf);
                blocks.write(buf);
            }
            Call::CloseLease { lease } => {
                5u8.write(buf);
                lease.write(buf);
            }
            Call::SetCommunityShare { percent } => {
                6u8.write(buf);
                percent.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + match self {
            Call::SetProduct { product, .. } => 4 + product.encode_size(),
            Call::SetTemplate { template, .. } => 4 + template.encode_size(),
            Call::SetPrice { .. } => 1 + Amount::SIZE,
            Call::CreateLease { .. } => 4 + 2 + 8,
            Call::ExtendLease { .. } => 8 + 8,
            Call::CloseLease { .. } => 8,
            Call::SetCommunityShare { .. } => 1,
        }
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Call::SetProduct {
                id: ProductId::read(buf)?,
                product: Product::read(buf)?,
            }),
            1 => Ok(Call::SetTemplate {
                id: TemplateId::read(buf)?,
                template: Template::read(buf)?,
            }),
            2 => Ok(Call::SetPrice {
                class: ResourceClass::read(buf)?,
                price: Amount::read(buf)?,
            }),
            3 => Ok(Call::CreateLease {
                template: TemplateId::read(buf)?,
                region: RegionId::read(buf)?,
                blocks: u64::read(buf)?,
            }),
            4 => Ok(Call::ExtendLease {
                lease: LeaseId::read(buf)?,
                blocks: u64::read(buf)?,
            }),
            5 => Ok(Call::CloseLease {
                lease: LeaseId::read(buf)?,
            }),
            6 => Ok(Call::SetCommunityShare {
                percent: u8::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// Events of the `market` module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A product was created or replaced.
    ProductSet {
        /// Its id.
        id: ProductId,
    },
    /// A template was created or replaced.
    TemplateSet {
        /// Its id.
        id: TemplateId,
    },
    /// A class's price changed.
    PriceSet {
        /// The class.
        class: ResourceClass,
        /// New price per compute unit per block.
        price: Amount,
    },
    /// A lease was created and placed.
    LeaseCreated {
        /// Its id.
        lease: LeaseId,
        /// Who pays.
        tenant: Address,
        /// Where it was placed.
        provider: ProviderId,
        /// Price per block.
        rate: Amount,
    },
    /// A lease was billed for one block.
    LeaseBilled {
        /// The lease.
        lease: LeaseId,
        /// Paid to the provider's owner.
        provider_payout: Amount,
        /// Paid to the community pool.
        community_payout: Amount,
    },
    /// A lease got more escrow.
    LeaseExtended {
        /// The lease.
        lease: LeaseId,
        /// Escrow added.
        added: Amount,
    },
    /// A lease ended and its unspent escrow was refunded.
    LeaseClosed {
        /// The lease.
        lease: LeaseId,
        /// Why.
        reason: CloseReason,
        /// Refunded to the tenant.
        refund: Amount,
    },
    /// The community share changed.
    CommunityShareSet {
        /// New percent.
        percent: u8,
    },
}

/// Errors of the `market` module.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// Only the privileged origin may make this call.
    #[error("privileged call from an unprivileged account")]
    NotPrivileged,
    /// Only the lease's tenant may make this call.
    #[error("not the lease's tenant")]
    NotTenant,
    /// No such product.
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    /// No such template.
    #[error("unknown template {0}")]
    UnknownTemplate(TemplateId),
    /// No such lease.
    #[error("unknown lease {0}")]
    UnknownLease(LeaseId),
    /// The lease is closed.
    #[error("lease {0} is closed")]
    LeaseClosed(LeaseId),
    /// The class has no price yet.
    #[error("no price for class {0:?}")]
    NoPrice(ResourceClass),
    /// Zero blocks, or a product with no resources or compute units.
    #[error("nothing to lease or pay for")]
    EmptyLease,
    /// Price or escrow overflows.
    #[error("amount overflow")]
    AmountOverflow,
    /// The tenant cannot reserve the escrow.
    #[error("cannot reserve the escrow: {0}")]
    EscrowUnpaid(String),
    /// The environment could not be recorded.
    #[error("environment: {0}")]
    Environment(String),
    /// No active provider of the class in the region has room outside the backup buffer.
    #[error("no capacity in region {0} for this product")]
    NoCapacity(RegionId),
    /// Too many active leases.
    #[error("too many active leases")]
    TooManyLeases,
    /// The community share is above 100 %.
    #[error("community share {0} above 100")]
    ShareTooLarge(u8),
}
