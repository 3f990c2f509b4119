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
//! A module never imports a module above it: it calls the small interface traits the modules
//! below it implement, and a need upward (the market creating an environment) is a trait the
//! lower module declares and the runtime implements.

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
    /// Chain randomness for this block: the parent block's digest (known to every validator,
    /// fixed before the block's transactions are chosen). Breaks placement ties and draws
    /// provisioners.
    pub randomness: Hash,
}

/// What a call or hook runs with: the state through an overlay, and the block.
pub struct Context<'a, 'o, R: StateReader> {
    /// The state, with the block's writes so far.
    pub overlay: &'a mut Overlay<'o, R>,
    /// The block.
    pub block: &'a BlockContext,
}

impl<R: StateReader> Context<'_, '_, R> {
    /// Height of the block being executed.
    pub fn height(&self) -> u64 {
        self.block.height
    }
}

/// What a call or a hook returns: its events, or why it failed.
pub type DispatchResult = Result<Vec<Event>, DispatchError>;

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

    /// Runs `call` for `origin`.
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

/// Fails with `error` unless `origin` is privileged.
pub fn ensure_privileged(
    origin: &Origin,
    error: impl Into<DispatchError>,
) -> Result<(), DispatchError> {
    if origin.privileged {
        Ok(())
    } else {
        Err(error.into())
    }
}

/// The events of one module as runtime events.
pub fn events<E: Into<Event>>(events: impl IntoIterator<Item = E>) -> Vec<Event> {
    events.into_iter().map(Into::into).collect()
}
