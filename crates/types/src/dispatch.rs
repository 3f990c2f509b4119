//! Who calls, and how a call fails.
//!
//! A module's call returns its events or a [`DispatchError`]. A [`DispatchError::Module`] is a
//! refusal by a module: it carries the module's index and name and the error's stable index
//! and name (declared once on the module's `Error` enum with `#[derive(ModuleError)]`), so a
//! receipt says which module failed with what (FRAME's `DispatchError::Module`). A failed call's
//! writes are dropped; its fee stays paid.

use logos_primitives::Address;
use serde::{Deserialize, Serialize};

/// Who is calling a module: the transaction's sender, and whether it is the privileged origin
/// (the bootstrap authority while it exists, or an enacted governance proposal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The sender's address.
    pub sender: Address,
    /// True for the privileged origin.
    pub privileged: bool,
}

/// Errors reading or writing state.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The backing store failed (I/O, a stale speculative batch, …): this node cannot execute.
    #[error("state backend: {0}")]
    Backend(String),
    /// A stored value or key did not decode: the state is corrupt (never produced by this code).
    #[error("corrupt value under key {key}: {reason}")]
    Corrupt {
        /// Hex of the key.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// A value larger than a storage value may be (never produced by this code: item sizes are
    /// bounded at compile time).
    #[error("value of {size_bytes} bytes under key {key} exceeds the storage value bound")]
    ValueTooLarge {
        /// Hex of the key.
        key: String,
        /// The value's size.
        size_bytes: usize,
    },
}

/// A module's refusal of a call, with its stable indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// Index of the module.
    pub module: u8,
    /// Name of the module.
    pub module_name: &'static str,
    /// Index of the error within its module.
    pub error: u8,
    /// Name of the error (a noun).
    pub error_name: &'static str,
    /// The error's human text.
    pub message: String,
}

/// Why a call (or an end-of-block hook) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// A module refused the call.
    #[error("{}::{}: {}", .0.module_name, .0.error_name, .0.message)]
    Module(ModuleError),
    /// The call needs the privileged origin (the framework's check, for every module).
    #[error(
        "privileged call: only an enacted governance proposal (logos gov propose) or the \
         bootstrap authority, while it exists, may make it"
    )]
    BadOrigin,
    /// State breaks an invariant or does not decode (a bug, caught by `try_state` in tests):
    /// the call fails and its writes are dropped, the chain goes on.
    #[error("state corruption: {0}")]
    Corruption(String),
    /// The state backend failed: this node cannot execute the block at all.
    #[error("state backend: {0}")]
    Backend(String),
}

impl From<StateError> for DispatchError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::Backend(reason) => DispatchError::Backend(reason),
            other => DispatchError::Corruption(other.to_string()),
        }
    }
}

/// What a call or a hook returns: its events, or why it failed.
pub type DispatchResult = Result<Vec<crate::Event>, DispatchError>;

/// A broken invariant (see [`DispatchError::Corruption`]).
pub fn corruption(what: impl Into<String>) -> DispatchError {
    DispatchError::Corruption(what.into())
}

/// Module index reported for [`DispatchError::Corruption`] (no module owns it).
pub const CORRUPTION_MODULE: u8 = u8::MAX;
/// Error index reported for [`DispatchError::BadOrigin`] within the module that was called
/// (reserved in every module).
pub const BAD_ORIGIN_ERROR: u8 = u8::MAX;

/// A failed call as receipts and RPC show it:
/// `{"module":"market","error":"LeaseClosed","index":[2,4],"message":"lease 3 is closed"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// Name of the module that refused (`runtime` for corruption).
    pub module: String,
    /// Name of the error.
    pub error: String,
    /// `[module index, error index]`, stable across releases.
    pub index: [u8; 2],
    /// Human text.
    pub message: String,
}

impl CallError {
    /// The receipt form of a failure of a call (or hook) of module `module` (index, name);
    /// `None` for a backend failure (the block is not executed at all then).
    pub fn from_dispatch(error: &DispatchError, module: (u8, &str)) -> Option<Self> {
        match error {
            DispatchError::BadOrigin => Some(Self {
                module: module.1.to_string(),
                error: "BadOrigin".into(),
                index: [module.0, BAD_ORIGIN_ERROR],
                message: error.to_string(),
            }),
            DispatchError::Module(module) => Some(Self {
                module: module.module_name.to_string(),
                error: module.error_name.to_string(),
                index: [module.module, module.error],
                message: module.message.clone(),
            }),
            DispatchError::Corruption(message) => Some(Self {
                module: "runtime".into(),
                error: "Corruption".into(),
                index: [CORRUPTION_MODULE, 0],
                message: message.clone(),
            }),
            DispatchError::Backend(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}: {}", self.module, self.error, self.message)
    }
}
