//! Types of `market` (module index 2): the price table and leases with escrow charged for
//! verified blocks (seed `003`: per-block pricing set by the DAO).
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 2 [`Prices`] | [`ResourceClass`] | [`Amount`] per compute unit per block |
//! | 3 [`Leases`] | [`LeaseId`] | [`Lease`] |
//! | 4 [`NextLeaseId`] | | [`LeaseId`] |
//! | 5 [`ActiveLeases`] | | ascending [`LeaseId`]s, at most [`ACTIVE_LEASES_MAX`] |
//! | 6 [`CommunityShare`] | | u8 percent, default [`DEFAULT_COMMUNITY_SHARE`] |
//! | 7 [`LeaseTerms`] | | [`Terms`], default [`Terms::default`] |
//!
//! Items 0 and 1 (products and templates) moved to `catalog`; their indices stay retired.
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 2 | [`Call::SetPrice`] | privileged |
//! | 3 | [`Call::CreateLease`] | anyone (becomes the tenant; the escrow is reserved) |
//! | 4 | [`Call::ExtendLease`] | tenant |
//! | 5 | [`Call::CloseLease`] | tenant |
//! | 6 | [`Call::SetCommunityShare`] | privileged |
//! | 7 | [`Call::SetTerms`] | privileged |

use crate::{
    calls,
    catalog::TemplateId,
    codec::BoundedVec,
    dvci::{ProviderId, RegionId, ResourceClass, Resources},
    errors, events, record, storage,
};
use logos_primitives::{Address, Amount};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "market";
/// Module index of `market`: storage prefix, call routing, error index.
pub const INDEX: u8 = 2;

/// Most leases active at once.
pub const ACTIVE_LEASES_MAX: usize = 4_096;
/// Share of lease payments to the community pool unless changed, percent.
pub const DEFAULT_COMMUNITY_SHARE: u8 = 10;

/// Most distinct (payee, role) pairs listed on a lease: its provider's owner, the community
/// pool and the provisioners of its first verifying rounds; later ones are summed in
/// [`Lease::paid_unlisted`] (the `LeaseBilled` events name every payout). Small because a
/// lease is read and written every block.
pub const PAYEES_MAX: usize = 16;

/// How leases are billed and rewarded (privileged: [`Call::SetTerms`]).
#[record]
#[derive(Copy)]
pub struct Terms {
    /// Blocks after the last verified block that are still charged (a recheck or a restart in
    /// progress).
    pub grace_blocks: u64,
    /// Blocks a lease may go without verified service (from its creation, or from its last
    /// verified block) before it is closed and its unspent escrow refunded (at least 1).
    pub verify_deadline_blocks: u64,
    /// Share of each charged block paid to the assignee of the last verifying round, percent.
    pub assignee_share: u8,
    /// Share paid to the checkers that confirmed the last verifying round (split evenly, the
    /// remainder to the provider), percent.
    pub checkers_share: u8,
}

impl Terms {
    /// Checks the bounds stated on each field, with `community` the community share.
    pub fn check(&self, community: u8) -> bool {
        let shares = u16::from(community)
            .saturating_add(u16::from(self.assignee_share))
            .saturating_add(u16::from(self.checkers_share));
        shares <= 100 && self.verify_deadline_blocks >= 1
    }
}

impl Default for Terms {
    fn default() -> Self {
        Terms {
            grace_blocks: 20,
            verify_deadline_blocks: 2_400,
            assignee_share: 5,
            checkers_share: 5,
        }
    }
}

/// Who a payout went to. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The provider's owner.
    #[index(0)]
    Provider,
    /// The community pool.
    #[index(1)]
    Community,
    /// The assignee of the last verifying round.
    #[index(2)]
    Assignee,
    /// A checker that confirmed the last verifying round.
    #[index(3)]
    Checker,
}

/// A payment out of a lease's escrow.
#[record]
#[derive(Copy)]
pub struct Payout {
    /// Paid to.
    pub account: Address,
    /// As what.
    pub role: Role,
    /// Smallest unit.
    pub amount: Amount,
}

id_type!(
    /// Identifies a lease (assigned in creation order from 0).
    LeaseId(u64)
);

/// Why a lease ended. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The tenant closed it.
    #[index(0)]
    ClosedByTenant,
    /// Its escrow could not pay the next block.
    #[index(1)]
    EscrowExhausted,
    /// Its environment was never verified within the deadline: everything refunded.
    #[index(2)]
    NeverVerified,
    /// Its environment went unverified for longer than the deadline.
    #[index(3)]
    ServiceLost,
    /// Its provider's machine failed or missed an attestation (`attestation`): the unspent
    /// escrow refunded.
    #[index(4)]
    ProviderExcluded,
}

/// A lease. `escrow` is reserved on the tenant's account and pays `rate` at the end of every
/// block in which its environment is `Verified` (or within the grace window after), until it
/// is closed.
#[record]
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
    /// Blocks charged so far.
    pub blocks_billed: u64,
    /// Blocks in which its environment was `Verified`.
    pub verified_blocks: u64,
    /// Blocks in which it was not.
    pub unverified_blocks: u64,
    /// The last block in which it was `Verified`.
    pub last_verified_at: Option<u64>,
    /// Everything paid out of its escrow, by payee and role (at most [`PAYEES_MAX`]).
    pub payouts: BoundedVec<Payout, PAYEES_MAX>,
    /// Paid to payees beyond [`PAYEES_MAX`], smallest unit.
    pub paid_unlisted: Amount,
    /// Height and reason of its end, if closed.
    pub closed: Option<(u64, CloseReason)>,
}

/// Calls of `market`.
#[calls]
pub enum Call {
    /// (privileged) Set the price of a compute unit per block for a class.
    #[index(2)]
    SetPrice {
        /// The class.
        class: ResourceClass,
        /// Smallest unit per compute unit per block.
        price: Amount,
    },
    /// Lease `template` in `region` for `blocks` blocks, escrowing the whole price.
    #[index(3)]
    CreateLease {
        /// What to lease.
        template: TemplateId,
        /// Where.
        region: RegionId,
        /// How many blocks to pay for up front (at least one).
        blocks: u64,
    },
    /// (tenant) Pay for `blocks` more blocks.
    #[index(4)]
    ExtendLease {
        /// The lease.
        lease: LeaseId,
        /// Additional blocks.
        blocks: u64,
    },
    /// (tenant) Close the lease now and get the unspent escrow back.
    #[index(5)]
    CloseLease {
        /// The lease.
        lease: LeaseId,
    },
    /// (privileged) Set the community share of lease payments, percent.
    #[index(6)]
    SetCommunityShare {
        /// 0 to 100 (with the terms' shares, at most 100 in all).
        percent: u8,
    },
    /// (privileged) Set the billing and reward terms.
    #[index(7)]
    SetTerms {
        /// The new terms.
        terms: Terms,
    },
}

/// Events of `market`.
#[events]
pub enum Event {
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
    /// A lease was charged for one block of verified service, and the charge split.
    LeaseBilled {
        /// The lease.
        lease: LeaseId,
        /// Charged, smallest unit (the lease's rate).
        charged: Amount,
        /// Every payment the charge was split into.
        payouts: Vec<Payout>,
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
    /// The billing and reward terms changed.
    TermsSet {
        /// The new terms.
        terms: Terms,
    },
}

/// Errors of `market`.
#[errors]
pub enum Error {
    /// Only the lease's tenant may make this call.
    #[index(0)]
    #[error("not the lease's tenant")]
    NotTenant,
    /// No such template.
    #[index(1)]
    #[error("unknown template {0}")]
    UnknownTemplate(TemplateId),
    /// The template's product is gone from the catalog.
    #[index(2)]
    #[error("the product of template {0} is gone")]
    UnknownProduct(TemplateId),
    /// No such lease.
    #[index(3)]
    #[error("unknown lease {0}")]
    UnknownLease(LeaseId),
    /// The lease is closed.
    #[index(4)]
    #[error("lease {0} is closed")]
    LeaseClosed(LeaseId),
    /// The class has no price yet.
    #[index(5)]
    #[error("no price for class {0:?}")]
    NoPrice(ResourceClass),
    /// Zero blocks, or a product with no resources or compute units.
    #[index(6)]
    #[error("nothing to lease or pay for")]
    EmptyLease,
    /// Price or escrow overflows.
    #[index(7)]
    #[error("amount overflow")]
    AmountOverflow,
    /// No active provider of the class in the region has room outside the backup buffer.
    #[index(8)]
    #[error("no capacity in region {0} for this product")]
    NoCapacity(RegionId),
    /// Too many active leases.
    #[index(9)]
    #[error("too many active leases")]
    TooManyLeases,
    /// The community share is above 100 % (with the terms' shares).
    #[index(10)]
    #[error("community share {0} with the terms' shares above 100")]
    ShareTooLarge(u8),
    /// Lease ids are used up.
    #[index(11)]
    #[error("no lease ids left")]
    IdsExhausted,
    /// A price of zero (a lease that would never end and pay nothing).
    #[index(12)]
    #[error("a price must be above zero")]
    ZeroPrice,
    /// Shares add up to more than 100 %, or a deadline of zero.
    #[index(13)]
    #[error("terms out of bounds (community, assignee and checkers shares at most 100 in all, a deadline of at least 1 block)")]
    InvalidTerms,
}

storage! {
    module = INDEX;
    /// Price of a compute unit per block, by class (absent: the class cannot be leased).
    pub Prices: map(2) ResourceClass => Amount;
    /// Leases by id (closed ones stay, with no escrow).
    pub Leases: map(3) LeaseId => Lease;
    /// The id the next lease gets.
    pub NextLeaseId: value(4) LeaseId;
    /// Open leases, ascending.
    pub ActiveLeases: value(5) BoundedVec<LeaseId, ACTIVE_LEASES_MAX>;
    /// Share of lease payments to the community pool, percent.
    pub CommunityShare: value(6) u8 = DEFAULT_COMMUNITY_SHARE;
    /// How leases are billed and rewarded.
    pub LeaseTerms: value(7) Terms = Terms::default();
}
