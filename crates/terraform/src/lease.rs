//! `resource "logos_lease"`: a lease of a catalog template, mapped to the market's
//! transactions (see the crate docs for the mapping).

use crate::{
    attribute,
    connection::{Connection, Shared},
};
use async_trait::async_trait;
use logos_client::{
    tenant::{catalog, close_lease, create_lease, template_named, watch},
    text::printable,
};
use logos_primitives::NodeKey;
use logos_types::{
    catalog::NAME_MAX_BYTES,
    dvci::RegionId,
    market::{self, Lease, LeaseId, Leases},
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments},
    Call,
};
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};
use tf_provider::{
    map,
    schema::{AttributeConstraint, AttributeType, Block, Description, Schema},
    value::{ValueEmpty, ValueNumber, ValueString},
    AttributePath, Diagnostics, Resource,
};

/// How long `create` follows a new lease until its environment is Verified, s.
pub const CREATE_TIMEOUT_S: u64 = 300;
/// Region of a lease whose configuration names none (the devnet's region).
pub const DEFAULT_REGION: u16 = 1;

/// A `logos_lease` as configured, planned and stored in the Terraform state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LeaseState<'a> {
    /// Name of the catalog template leased.
    pub template: ValueString<'a>,
    /// Blocks of escrow bought over the lease's life (creation plus extensions).
    pub blocks: ValueNumber,
    /// Region id.
    pub region: ValueNumber,
    /// Lease id (= environment id), decimal.
    pub id: ValueString<'a>,
    /// `Verified`, `Ready`, `Scheduled` or `Pending` (the highest condition that is true).
    pub status: ValueString<'a>,
    /// `host:port` of the environment (empty until placed).
    pub endpoint: ValueString<'a>,
    /// Escrow left, smallest token unit, decimal.
    pub escrow: ValueString<'a>,
}

impl LeaseState<'_> {
    /// The lease id of a created lease.
    fn lease(&self) -> Result<LeaseId, String> {
        let text = self.id.as_deref_option().unwrap_or_default();
        text.parse()
            .map_err(|_| format!("lease id {text:?} in the state is not a number"))
    }

    /// Blocks as configured: at least 1.
    fn blocks(&self) -> Result<u64, String> {
        match self.blocks.as_ref_option() {
            Some(&blocks) if blocks >= 1 => Ok(blocks as u64),
            Some(blocks) => Err(format!("blocks must be at least 1, not {blocks}")),
            None => Err("blocks is not known".into()),
        }
    }

    /// The region as configured, or [`DEFAULT_REGION`].
    fn region(&self) -> Result<RegionId, String> {
        if self.region.is_unknown() {
            return Err("region is not known yet".into());
        }
        match self.region.as_ref_option() {
            None => Ok(RegionId(DEFAULT_REGION)),
            Some(&region) => u16::try_from(region)
                .map(RegionId)
                .map_err(|_| format!("region {region} is not a region id (0 to 65535)")),
        }
    }

    /// Fills the computed attributes from the finalized lease and environment.
    fn observed(&mut self, record: &Lease, environment: Option<&Environment>) {
        self.escrow = record.escrow.0.to_string().into();
        self.region = i64::from(record.region.get()).into();
        self.status = status(environment).to_string().into();
        self.endpoint = environment
            .map(|environment| environment.endpoint.as_str().to_string())
            .unwrap_or_default()
            .into();
    }

    /// Marks the computed attributes as known only after apply.
    fn unknown_after_apply(&mut self) {
        self.id = ValueString::Unknown;
        self.status = ValueString::Unknown;
        self.endpoint = ValueString::Unknown;
        self.escrow = ValueString::Unknown;
    }
}

/// What the provider keeps in the state beside the attributes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LeasePrivate<'a> {
    /// The full-node key `create` registered for the lease's workload (deregistered exactly
    /// at destroy).
    pub registered: ValueString<'a>,
}

/// The highest condition of `environment` that is true.
fn status(environment: Option<&Environment>) -> &'static str {
    let Some(environment) = environment else {
        return "Pending";
    };
    let order = [
        ConditionType::Verified,
        ConditionType::Ready,
        ConditionType::Scheduled,
    ];
    order
        .into_iter()
        .find(|kind| environment.condition(*kind).status == ConditionStatus::True)
        .map(|kind| match kind {
            ConditionType::Verified => "Verified",
            ConditionType::Ready => "Ready",
            ConditionType::Scheduled => "Scheduled",
        })
        .unwrap_or("Pending")
}

/// Checks what a configuration can be checked for without the chain (values still unknown
/// are checked at plan).
pub fn check(config: &LeaseState<'_>) -> Result<(), String> {
    if let Some(name) = config.template.as_deref_option() {
        if name.is_empty() || name.len() > NAME_MAX_BYTES {
            return Err(format!(
                "template must be a catalog template's name (1 to {NAME_MAX_BYTES} bytes)"
            ));
        }
    }
    if config.blocks.is_value() {
        config.blocks()?;
    }
    if config.region.is_value() {
        config.region()?;
    }
    Ok(())
}

/// The `logos_lease` resource.
pub struct LeaseResource {
    shared: Shared,
}

impl LeaseResource {
    /// The resource, using the provider's connection.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// The connection, or an error in `diags`.
    fn connection(&self, diags: &mut Diagnostics) -> Option<Arc<Connection>> {
        self.shared
            .get()
            .map_err(|error| diags.root_error_short(error.to_string()))
            .ok()
    }
}

/// What `read`, `update` and `destroy` find of a lease in the state.
enum Found {
    /// Open, the provider key's.
    Open(Box<Lease>, Option<Box<Environment>>),
    /// Closed (for good: closing is final).
    Closed,
}

/// Reads lease `id` and its environment. A lease the chain does not have is an error, never
/// a deletion (the chain keeps every lease record, so absence means a stale or lying
/// server); another account's lease is an error before anything is paid.
async fn read_lease(connection: &Connection, id: LeaseId) -> Result<Found, String> {
    let record = connection
        .read::<Leases>(&id)
        .await
        .map_err(|error| printable(&error.to_string()))?
        .ok_or_else(|| {
            format!("the server has no lease {id}: it is stale or lying (leases are never deleted)")
        })?;
    if let Ok(wallet) = connection.wallet() {
        if record.tenant != wallet.address() {
            return Err(format!(
                "lease {id} belongs to {}, not to the provider's key {}",
                record.tenant,
                wallet.address()
            ));
        }
    }
    if record.closed.is_some() {
        return Ok(Found::Closed);
    }
    let environment = connection
        .read::<Environments>(&EnvironmentId::from(id))
        .await
        .map_err(|error| printable(&error.to_string()))?;
    Ok(Found::Open(Box::new(record), environment.map(Box::new)))
}

#[async_trait]
impl Resource for LeaseResource {
    type State<'a> = LeaseState<'a>;
    type PrivateState<'a> = LeasePrivate<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, OptionalComputed, Required};
        use AttributeType::{Number, String};
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain(
                    "A lease of a catalog template: an environment on a provider, paid per \
                     verified block from an escrow.",
                ),
                attributes: map! {
                    "template" => attribute(String, Required,
                        "Name of the catalog template (see data.logos_catalog); changing it \
                         replaces the lease."),
                    "blocks" => attribute(Number, Required,
                        "Blocks of escrow bought over the lease's life; raising it extends the \
                         lease in place, lowering it is refused."),
                    "region" => attribute(Number, OptionalComputed,
                        "Region id (default 1); changing it replaces the lease."),
                    "id" => attribute(String, Computed, "Lease id."),
                    "status" => attribute(String, Computed,
                        "Verified, Ready, Scheduled or Pending: the highest true condition."),
                    "endpoint" => attribute(String, Computed,
                        "host:port of the environment."),
                    "escrow" => attribute(String, Computed,
                        "Escrow left, in the smallest token unit."),
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        if let Err(reason) = check(&config) {
            diags.root_error("invalid logos_lease", reason);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let Some(connection) = self.connection(diags) else {
            return Some((state, private_state));
        };
        let id = match state.lease() {
            Ok(id) => id,
            Err(reason) => {
                diags.root_error("cannot read logos_lease", reason);
                return Some((state, private_state));
            }
        };
        match read_lease(&connection, id).await {
            Ok(Found::Open(record, environment)) => {
                let mut state = state;
                state.observed(&record, environment.as_deref());
                Some((state, private_state))
            }
            // Closed outside Terraform: the plan shows it deleted and creates it again.
            Ok(Found::Closed) => None,
            Err(reason) => {
                diags.root_error(format!("cannot read lease {id}"), reason);
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut state = proposed_state;
        if let Err(reason) = check(&state) {
            diags.root_error("invalid logos_lease", reason);
            return None;
        }
        if state.region.is_null() {
            state.region = i64::from(DEFAULT_REGION).into();
        }
        // A name that is not in the catalog fails the plan, not the apply.
        if let (Some(name), Some(connection)) = (
            state.template.as_deref_option().map(str::to_string),
            self.connection(diags),
        ) {
            let found = match catalog(&connection.client).await {
                Ok(entries) => template_named(&entries, &name).map(|_| ()),
                Err(error) => Err(error),
            };
            if let Err(error) = found {
                diags.error(
                    "no such template",
                    error.to_string(),
                    AttributePath::new("template"),
                );
                return None;
            }
        }
        state.unknown_after_apply();
        Some((state, Default::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut state = proposed_state;
        if let Err(reason) = check(&state) {
            diags.root_error("invalid logos_lease", reason);
            return None;
        }
        let mut replace = Vec::new();
        if state.template != prior_state.template {
            replace.push(AttributePath::new("template"));
        }
        if !state.region.is_null() && state.region != prior_state.region {
            replace.push(AttributePath::new("region"));
        }
        if state.region.is_null() {
            state.region = prior_state.region;
        }
        if !replace.is_empty() {
            state.unknown_after_apply();
            return Some((state, prior_private_state, replace));
        }
        match (
            state.blocks.as_ref_option(),
            prior_state.blocks.as_ref_option(),
        ) {
            (Some(new), Some(old)) if new == old => {}
            (Some(new), Some(old)) if new < old => {
                diags.error(
                    "blocks can only grow",
                    format!(
                        "blocks went from {old} to {new}: escrow paid into a lease comes back \
                         only when it closes (destroy it, or replace it with a shorter one)"
                    ),
                    AttributePath::new("blocks"),
                );
                return None;
            }
            // Raised, or not known yet: the extension changes what the chain reports.
            _ => {
                state.status = ValueString::Unknown;
                state.endpoint = ValueString::Unknown;
                state.escrow = ValueString::Unknown;
            }
        }
        Some((state, prior_private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let connection = self.connection(diags)?;
        let created = create(&connection, &planned_state).await;
        let id = match created {
            Ok(id) => id,
            Err(reason) => {
                diags.root_error("cannot create the lease", reason);
                return None;
            }
        };
        let mut state = planned_state;
        state.id = id.to_string().into();
        // Created from here on: whatever happens next, the state must keep it.
        let timeout = Duration::from_secs(CREATE_TIMEOUT_S);
        let wallet = connection.wallet().ok();
        let mut private = planned_private_state;
        match watch(&connection.client, id, timeout, wallet, &mut |_| {}).await {
            Ok(milestones) => {
                if let Some(key) = milestones.registered {
                    private.registered = key.to_string().into();
                }
            }
            Err(error) => diags.root_error(
                format!("lease {id} was created but did not become Verified"),
                printable(&error.to_string()),
            ),
        }
        refresh(&connection, id, &mut state, diags).await;
        Some((state, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let connection = self.connection(diags)?;
        let extended = extend(&connection, &prior_state, &planned_state).await;
        let id = match extended {
            Ok(id) => id,
            Err(reason) => {
                diags.root_error("cannot extend the lease", reason);
                return None;
            }
        };
        let mut state = planned_state;
        refresh(&connection, id, &mut state, diags).await;
        Some((state, planned_private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let connection = self.connection(diags)?;
        let registered = planned_private_state
            .registered
            .as_deref_option()
            .and_then(|key| key.parse().ok());
        match destroy(&connection, &prior_state, registered).await {
            Ok(None) => Some(()),
            Ok(Some(warning)) => {
                diags.root_warning(
                    "the lease is closed; its full node is still registered",
                    warning,
                );
                Some(())
            }
            Err(reason) => {
                diags.root_error("cannot close the lease", reason);
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let connection = self.connection(diags)?;
        match import(&connection, &id).await {
            Ok(state) => Some((state, Default::default())),
            Err(reason) => {
                diags.root_error(format!("cannot import lease {}", printable(&id)), reason);
                None
            }
        }
    }
}

fn shown(error: impl std::fmt::Display) -> String {
    printable(&error.to_string())
}

/// Leases the planned template; returns the lease id (see `create_lease`: the lease is checked
/// on chain, and found again if its receipt was lost).
async fn create(connection: &Connection, planned: &LeaseState<'_>) -> Result<LeaseId, String> {
    let wallet = connection.wallet().map_err(shown)?;
    let name = planned.template.as_deref_option().unwrap_or_default();
    let entries = catalog(&connection.client).await.map_err(shown)?;
    let template = template_named(&entries, name).map_err(shown)?.id;
    let (blocks, region) = (planned.blocks()?, planned.region()?);
    let _turn = connection.submitting.lock().await;
    let (id, _) = create_lease(&connection.client, wallet, template, region, blocks)
        .await
        .map_err(shown)?;
    Ok(id)
}

/// Extends the lease by the blocks added since `prior`; returns the lease id.
async fn extend(
    connection: &Connection,
    prior: &LeaseState<'_>,
    planned: &LeaseState<'_>,
) -> Result<LeaseId, String> {
    let id = prior.lease()?;
    let added = planned.blocks()?.saturating_sub(prior.blocks()?);
    if added == 0 {
        return Ok(id);
    }
    if let Found::Closed = read_lease(connection, id).await? {
        return Err(format!("lease {id} is closed: it cannot be extended"));
    }
    let wallet = connection.wallet().map_err(shown)?;
    let call = Call::Market(market::Call::ExtendLease {
        lease: id,
        blocks: added,
    });
    let _turn = connection.submitting.lock().await;
    connection
        .client
        .execute(wallet, call)
        .await
        .map_err(shown)?;
    Ok(id)
}

/// Closes the lease unless it is already closed (a warning if its full node could not be
/// deregistered after).
async fn destroy(
    connection: &Connection,
    prior: &LeaseState<'_>,
    registered: Option<NodeKey>,
) -> Result<Option<String>, String> {
    let id = prior.lease()?;
    if let Found::Closed = read_lease(connection, id).await? {
        return Ok(None);
    }
    let wallet = connection.wallet().map_err(shown)?;
    let _turn = connection.submitting.lock().await;
    let closed = close_lease(&connection.client, wallet, id, registered)
        .await
        .map_err(shown)?;
    Ok(closed.deregistration_error.map(shown))
}

/// The state of an existing open lease of the provider's key (`terraform import`): its
/// template's name, the blocks bought so far (billed plus what the escrow still pays) and
/// what the chain reports.
async fn import(connection: &Connection, id: &str) -> Result<LeaseState<'static>, String> {
    let id: LeaseId = id
        .parse()
        .map_err(|_| "a lease id is a number (see `logos lease list`)".to_string())?;
    connection.wallet().map_err(shown)?;
    let Found::Open(record, environment) = read_lease(connection, id).await? else {
        return Err(format!("lease {id} is closed"));
    };
    let entries = catalog(&connection.client).await.map_err(shown)?;
    let name = entries
        .iter()
        .find(|entry| entry.id == record.template)
        .map(|entry| entry.template.name.as_str().to_string())
        .ok_or_else(|| {
            format!(
                "lease {id}'s template {} is not in the catalog",
                record.template
            )
        })?;
    let left = record.escrow.0.checked_div(record.rate.0).unwrap_or(0);
    let bought = u128::from(record.blocks_billed).saturating_add(left);
    let mut state = LeaseState {
        template: name.into(),
        blocks: i64::try_from(bought).unwrap_or(i64::MAX).into(),
        id: id.to_string().into(),
        ..Default::default()
    };
    state.observed(&record, environment.as_deref());
    Ok(state)
}

/// Fills `state`'s computed attributes from the chain (a warning if it cannot).
async fn refresh(
    connection: &Connection,
    id: LeaseId,
    state: &mut LeaseState<'_>,
    diags: &mut Diagnostics,
) {
    match read_lease(connection, id).await {
        Ok(Found::Open(record, environment)) => state.observed(&record, environment.as_deref()),
        Ok(Found::Closed) => {
            diags.root_warning_short(format!("lease {id} is closed"));
            state.status = "Closed".to_string().into();
            state.endpoint = String::new().into();
        }
        Err(reason) => diags.root_warning(format!("cannot read lease {id}"), reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(template: &str, blocks: i64) -> LeaseState<'static> {
        LeaseState {
            template: template.to_string().into(),
            blocks: blocks.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_configuration_is_checked_for_its_bounds_and_unknowns_wait_for_the_plan() {
        assert_eq!(check(&config("Logos full node", 1)), Ok(()));
        assert!(check(&config("", 10)).unwrap_err().contains("template"));
        let long = "x".repeat(NAME_MAX_BYTES + 1);
        assert!(check(&config(&long, 10)).unwrap_err().contains("template"));
        for blocks in [0, -1, i64::MIN] {
            assert!(check(&config("a", blocks))
                .unwrap_err()
                .contains("at least 1"));
        }
        let mut far = config("a", 1);
        for region in [-1, 65_536, i64::MAX] {
            far.region = region.into();
            assert!(check(&far).unwrap_err().contains("region"), "{region}");
        }
        far.region = 65_535.into();
        assert_eq!(far.region(), Ok(RegionId(65_535)));
        // Values known only at apply are not refused at validation.
        let unknown = LeaseState {
            template: ValueString::Unknown,
            blocks: ValueNumber::Unknown,
            region: ValueNumber::Unknown,
            ..Default::default()
        };
        assert_eq!(check(&unknown), Ok(()));
        assert_eq!(config("a", 1).region(), Ok(RegionId(DEFAULT_REGION)));
    }

    #[test]
    fn a_state_whose_id_is_not_a_lease_id_is_refused() {
        let mut state = config("a", 1);
        state.id = "7".to_string().into();
        assert_eq!(state.lease(), Ok(LeaseId(7)));
        for forged in ["-1", "0x7", "7; rm -rf /", "", "18446744073709551616"] {
            state.id = forged.to_string().into();
            assert!(state.lease().is_err(), "{forged}");
        }
    }

    #[test]
    fn the_status_is_the_highest_true_condition() {
        use logos_types::{catalog::TemplateId, dvci::ProviderId, operations::Spec};
        assert_eq!(status(None), "Pending");
        let tenant = logos_primitives::Address::default();
        let mut environment =
            Environment::new(tenant, ProviderId(0), TemplateId(0), Spec::default(), 1);
        assert_eq!(status(Some(&environment)), "Scheduled");
        let set = |environment: &mut Environment, kind, value| {
            environment.set_condition(kind, value, "", "", 2)
        };
        set(
            &mut environment,
            ConditionType::Verified,
            ConditionStatus::True,
        );
        assert_eq!(status(Some(&environment)), "Verified");
        set(
            &mut environment,
            ConditionType::Verified,
            ConditionStatus::False,
        );
        set(
            &mut environment,
            ConditionType::Ready,
            ConditionStatus::True,
        );
        assert_eq!(status(Some(&environment)), "Ready");
        set(
            &mut environment,
            ConditionType::Ready,
            ConditionStatus::False,
        );
        set(
            &mut environment,
            ConditionType::Scheduled,
            ConditionStatus::False,
        );
        assert_eq!(status(Some(&environment)), "Pending");
    }
}
