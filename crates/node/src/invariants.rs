//! The runtime's invariants checked in a running validator (`check_invariants = true` in the
//! node configuration, `logos devnet --check-invariants`): a debugging aid for devnets and
//! tests, off by default.
//!
//! The authenticated store hashes its keys, so it cannot be scanned by prefix. The check
//! therefore keeps its own copy of the finalized state as a map: built from genesis (or, after
//! a restart, by re-executing the finalized blocks from marshal's archive), then advanced by
//! each finalized block's write set. After every block it runs `logos_runtime::try_state_all`;
//! a violation is logged as an error and counted in `invariant_violations`.

use crate::{
    chain::ChainError,
    engine::MarshalMailbox,
    shared::{FinalizedBlock, Shared},
};
use commonware_consensus::marshal::Identifier;
use commonware_runtime::{
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Metrics, Spawner, Storage,
};
use logos_framework::{apply, State};
use logos_primitives::Height;
use logos_runtime::{execute_block, genesis_state, try_state_all};
use logos_types::Genesis;
use tracing::{error, info};

/// The check's state (see the module docs).
pub struct InvariantCheck {
    state: State,
    height: u64,
    checks: Counter,
    violations: Counter,
}

impl InvariantCheck {
    /// A check starting from `genesis`; registers its metrics on `metrics`.
    pub fn new(genesis: &Genesis, metrics: &impl Metrics) -> Result<Self, ChainError> {
        let mut state = State::new();
        apply(
            &mut state,
            genesis_state(genesis).map_err(ChainError::Genesis)?,
        );
        Ok(Self {
            state,
            height: 0,
            checks: metrics.counter(
                "invariant_checks",
                "finalized blocks after which every invariant was checked",
            ),
            violations: metrics.counter(
                "invariant_violations",
                "finalized blocks after which an invariant did not hold",
            ),
        })
    }

    /// Re-executes finalized blocks `1..=tip` into the check's state (after a restart).
    pub async fn replay<E: Storage + Clock + Metrics + Spawner>(
        mut self,
        shared: &Shared<E>,
        marshal: &MarshalMailbox,
        tip: Height,
    ) -> Result<Self, ChainError> {
        for height in self.height + 1..=tip.get() {
            let block = marshal
                .get_block(Identifier::Height(Height::new(height)))
                .await
                .ok_or_else(|| ChainError::Storage(format!("finalized block {height} missing")))?;
            let block = block.inner();
            let context = shared.block_context(block);
            let outcome = execute_block(&self.state, &context, &block.transactions).await?;
            apply(&mut self.state, outcome.writes);
            self.height = height;
        }
        info!(height = self.height, "invariant check caught up");
        Ok(self)
    }

    /// Advances to `finalized` and checks every invariant.
    pub fn after(&mut self, finalized: &FinalizedBlock) {
        let height = finalized.block.height.get();
        // Marshal delivers at least once: a block already applied is skipped; a gap would
        // check a state that skipped a block's writes.
        if height <= self.height {
            return;
        }
        if height != self.height + 1 {
            error!(
                height,
                checked = self.height,
                "invariant check: a finalized block was skipped"
            );
            self.violations.inc();
        }
        let Some(writes) = finalized.executed.writes.clone() else {
            error!(height, "invariant check: the block's writes were not kept");
            self.violations.inc();
            return;
        };
        apply(&mut self.state, writes);
        self.height = height;
        self.checks.inc();
        if let Err(violation) = try_state_all(&self.state) {
            error!(height, %violation, "invariant violated");
            self.violations.inc();
        }
    }
}
