//! The module framework of the Logos runtime (in the spirit of FRAME, not a copy of it).
//!
//! An on-chain module is one crate under `crates/modules/<name>` with a zero-sized type that
//! implements [`Module`]:
//! - [`Module::dispatch`] runs one of its calls for an [`Origin`] and returns the events, or a
//!   [`DispatchError`] (the executor then drops the call's writes; the fee stays paid). The
//!   routing is generated: the module implements its `CallHandler` trait (one method per call,
//!   derived on its `Call` enum in `logos-types`) and `dispatch` is `call.dispatch::<_, Self>`;
//! - [`Module::on_block_end`] runs after the block's transactions (billing, timeouts);
//! - [`Module::try_state`] checks the module's invariants over a full state; mock chains run it
//!   after every block, and the runtime's `try_state_all` adds the chain-wide ones;
//! - [`Module::genesis`] writes its genesis state.
//!
//! State is read and written only through typed storage items ([`MapExt`], [`ValueExt`] on the
//! items a module declares with `logos_types::storage!`), through a write [`Overlay`].
//!
//! Determinism: module code sees the state, the [`BlockContext`] (height, author, chain
//! randomness) and the call; no wall clock, floats, hash-map iteration order or other
//! randomness. It never panics: a broken invariant is a `DispatchError::Corruption`.
//!
//! A module never imports a module above it: it calls the inherent functions the modules below
//! it offer (`Balances::reserve`) and reads their storage items; a need upward (the market
//! creating an environment) is a trait the lower module declares and the runtime implements.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod overlay;
mod storage;

pub use overlay::{apply, Overlay, State, StateReader, WriteSet};
pub use storage::{MapExt, ValueExt};

use logos_primitives::{Address, ChainId, Hash};
use logos_types::{DispatchError, Event, Genesis, Origin, Params};
use std::future::Future;

/// What the executor knows about the block besides its transactions.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// The network's chain id.
    pub chain_id: ChainId,
    /// Height of the block being executed.
    pub height: u64,
    /// The block's author (the proposer), credited with fees.
    pub author: Address,
    /// Chain parameters from genesis.
    pub params: Params,
    /// Chain randomness for this block: `SHA-256` of the block's seed, the committee's
    /// threshold BLS signature of the parent's height (module `beacon`: unique, so no proposer
    /// chooses it; known once a quorum signed, after a block at the parent's height was
    /// proposed). In an epoch without
    /// a group key (epoch 0, a failed DKG) it is the parent's digest, which that parent's
    /// proposer could grind. Breaks placement ties and draws provisioners and challengers.
    pub randomness: Hash,
    /// The parent block's digest (what the parent's finalize votes sign).
    pub parent: Hash,
}

/// What a call or hook runs with: the state through an overlay, the block, and (for a call)
/// who calls.
pub struct Context<'a, 'o, R: StateReader> {
    /// The state, with the block's writes so far.
    pub overlay: &'a mut Overlay<'o, R>,
    /// The block.
    pub block: &'a BlockContext,
    origin: Option<Origin>,
}

impl<'a, 'o, R: StateReader> Context<'a, 'o, R> {
    /// The context of an end-of-block hook (no caller).
    pub fn new(overlay: &'a mut Overlay<'o, R>, block: &'a BlockContext) -> Self {
        Self {
            overlay,
            block,
            origin: None,
        }
    }

    /// This context, for a call from `origin`.
    pub fn called_by(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Height of the block being executed.
    pub fn height(&self) -> u64 {
        self.block.height
    }

    /// Who calls ([`DispatchError::BadOrigin`] in a hook, where nobody does).
    pub fn origin(&self) -> Result<&Origin, DispatchError> {
        self.origin.as_ref().ok_or(DispatchError::BadOrigin)
    }

    /// The calling account.
    pub fn sender(&self) -> Result<Address, DispatchError> {
        Ok(self.origin()?.sender)
    }

    /// Fails with [`DispatchError::BadOrigin`] unless the caller is the privileged origin.
    pub fn ensure_privileged(&self) -> Result<(), DispatchError> {
        match self.origin()?.privileged {
            true => Ok(()),
            false => Err(DispatchError::BadOrigin),
        }
    }
}

pub use logos_types::DispatchResult;

/// The result of an invariant check: a description of the first violation found.
pub type TryStateResult = Result<(), String>;

/// One on-chain module (see the crate docs).
pub trait Module {
    /// The module's index (storage prefix, call routing, error index).
    const INDEX: u8;
    /// The module's name.
    const NAME: &'static str;
    /// Its calls.
    type Call: Sync;

    /// Runs `call` for `origin` (which the context then carries).
    fn dispatch<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        call: &Self::Call,
    ) -> impl Future<Output = DispatchResult> + Send;

    /// Runs after the block's transactions; nothing by default.
    fn on_block_end<R: StateReader>(
        _ctx: &mut Context<'_, '_, R>,
    ) -> impl Future<Output = DispatchResult> + Send {
        async { Ok(Vec::new()) }
    }

    /// Checks the module's invariants over a full state.
    fn try_state(state: &State) -> TryStateResult;

    /// The module's genesis state; nothing by default.
    fn genesis(_genesis: &Genesis) -> Result<WriteSet, String> {
        Ok(WriteSet::new())
    }
}

/// The [`Module`] items every module writes the same way, from its `logos_types` module: its
/// index, name and call type, and `dispatch` routing each call to the module's `CallHandler`
/// (the one `match`, generated with the call enum).
///
/// ```ignore
/// impl Module for Dvci {
///     logos_framework::module_calls!(logos_types::dvci);
///     fn try_state(state: &State) -> TryStateResult { … }
/// }
/// ```
#[macro_export]
macro_rules! module_calls {
    ($($types:ident)::+) => {
        const INDEX: u8 = $($types)::+::INDEX;
        const NAME: &'static str = $($types)::+::NAME;
        type Call = $($types)::+::Call;

        async fn dispatch<R: $crate::StateReader>(
            ctx: &mut $crate::Context<'_, '_, R>,
            origin: &$crate::__private::Origin,
            call: &Self::Call,
        ) -> $crate::DispatchResult {
            let mut ctx = $crate::Context::new(&mut *ctx.overlay, ctx.block).called_by(*origin);
            call.dispatch::<_, Self>(&mut ctx).await
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use logos_types::Origin;
}

/// Fails unless `list` is strictly ascending (the sorted id lists of `try_state`).
pub fn ensure_ascending<T: Ord>(list: &[T], what: &str) -> TryStateResult {
    match list.windows(2).all(|pair| pair[0] < pair[1]) {
        true => Ok(()),
        false => Err(format!("{what} not ascending")),
    }
}

/// The events of one module as runtime events.
pub fn events<E: Into<Event>>(events: impl IntoIterator<Item = E>) -> Vec<Event> {
    events.into_iter().map(Into::into).collect()
}
