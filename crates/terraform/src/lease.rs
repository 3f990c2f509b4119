//! `resource "logos_lease"`: `replicas` leases of one catalog template (one unless told),
//! mapped to the market's transactions (see the crate docs for the mapping).

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
use std::{borrow::Cow, collections::BTreeMap, sync::Arc, time::Duration};
use tf_provider::{
    map,
    schema::{AttributeConstraint, AttributeType, Block, Description, Schema},
    value::{Value, ValueEmpty, ValueList, ValueMap, ValueNumber, ValueString},
    AttributePath, Diagnostics, Resource,
};

/// How long `create` follows a new lease until its environment is Verified, s.
pub const CREATE_TIMEOUT_S: u64 = 300;
/// Region of a lease whose configuration names none (the devnet's region).
pub const DEFAULT_REGION: u16 = 1;
/// Most leases one `logos_lease` keeps open (its `replicas`).
pub const REPLICAS_MAX: usize = 16;
/// Statuses from the least to the most advanced (see [`status`]).
const STATUSES: [&str; 4] = ["Pending", "Scheduled", "Ready", "Verified"];

/// A `logos_lease` as configured, planned and stored in the Terraform state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseState<'a> {
    /// Name of the catalog template leased.
    pub template: ValueString<'a>,
    /// Blocks of escrow bought for each lease over its life (creation plus extensions).
    pub blocks: ValueNumber,
    /// Region id.
    pub region: ValueNumber,
    /// Leases of the template kept open: 1 (the default) to [`REPLICAS_MAX`].
    pub replicas: ValueNumber,
    /// The first lease's id (= environment id), decimal.
    pub id: ValueString<'a>,
    /// `Verified`, `Ready`, `Scheduled` or `Pending`: the least advanced lease's highest true
    /// condition (`Verified` only when every replica is).
    pub status: ValueString<'a>,
    /// `host:port` of the first lease's environment (empty until placed).
    pub endpoint: ValueString<'a>,
    /// Escrow left in all the leases together, smallest token unit, decimal.
    pub escrow: ValueString<'a>,
    /// Every open lease's id, oldest first (the first is `id`).
    pub lease_ids: ValueList<ValueString<'a>>,
    /// Every open lease's `host:port`, in `lease_ids` order.
    pub endpoints: ValueList<ValueString<'a>>,
    /// The first lease's declared ports and where each is published: `"9333" = "host:port"`
    /// (a node's p2p port, say, for its network to dial).
    pub ports: ValueMap<'a, ValueString<'a>>,
    /// What apply waits for after leasing: `Verified` (the default) or `Placed`
    /// ([`WaitUntil`]).
    pub wait_until: ValueString<'a>,
}

/// What apply waits for after leasing, per new lease (at most [`CREATE_TIMEOUT_S`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitUntil {
    /// Healthy and cross-checked (a leased Logos full node's key registered on the way).
    Verified,
    /// The environment reports its endpoint and ports: for a node that syncs only once its
    /// network dials it, which its tenant can do only when it knows where.
    Placed,
}

impl WaitUntil {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Verified => "Verified",
            Self::Placed => "Placed",
        }
    }
}

/// How often `Placed` is checked for, ms.
const PLACED_POLL_MS: u64 = 250;

/// An open lease of the state, as finalized.
struct Open {
    id: LeaseId,
    record: Box<Lease>,
    environment: Option<Box<Environment>>,
}

/// A lease id as the state or an import names it.
fn lease_id(text: &str) -> Result<LeaseId, String> {
    text.parse()
        .map_err(|_| format!("a lease id is a number (see `logos lease list`), not {text:?}"))
}

/// `environment`'s declared ports and where each is published (`host:port`, at its
/// endpoint's host), as last reported.
fn published(
    environment: Option<&Environment>,
) -> BTreeMap<Cow<'static, str>, ValueString<'static>> {
    let Some(environment) = environment else {
        return BTreeMap::new();
    };
    let Some((host, _)) = environment.endpoint.as_str().rsplit_once(':') else {
        return BTreeMap::new();
    };
    environment
        .ports
        .iter()
        .map(|mapping| {
            let address = format!("{host}:{}", mapping.published);
            (Cow::Owned(mapping.port.to_string()), address.into())
        })
        .collect()
}

/// Blocks `record` was bought for: billed plus what its escrow still pays.
fn bought(record: &Lease) -> u64 {
    let left = record.escrow.0.checked_div(record.rate.0).unwrap_or(0);
    let total = u128::from(record.blocks_billed).saturating_add(left);
    u64::try_from(total).unwrap_or(u64::MAX)
}

impl<'a> LeaseState<'a> {
    /// The leases of the state, oldest first (`lease_ids`, or `id` in a state without them).
    fn leases(&self) -> Result<Vec<LeaseId>, String> {
        let listed = self.lease_ids.as_ref_option().filter(|ids| !ids.is_empty());
        let ids: Vec<&str> = match listed {
            Some(ids) => ids
                .iter()
                .map(|id| id.as_deref_option().unwrap_or_default())
                .collect(),
            None => vec![self.id.as_deref_option().unwrap_or_default()],
        };
        if ids.len() > REPLICAS_MAX {
            return Err(format!("the state holds more than {REPLICAS_MAX} leases"));
        }
        ids.into_iter().map(lease_id).collect()
    }

    /// Blocks as configured: at least 1.
    fn blocks(&self) -> Result<u64, String> {
        match self.blocks.as_ref_option() {
            Some(&blocks) if blocks >= 1 => Ok(blocks as u64),
            Some(blocks) => Err(format!("blocks must be at least 1, not {blocks}")),
            None => Err("blocks is not known".into()),
        }
    }

    /// What apply waits for, as configured (`Verified` if not set).
    fn wait_until(&self) -> Result<WaitUntil, String> {
        match self.wait_until.as_deref_option() {
            None => Ok(WaitUntil::Verified),
            Some(name) => [WaitUntil::Verified, WaitUntil::Placed]
                .into_iter()
                .find(|until| until.name() == name)
                .ok_or_else(|| {
                    format!(
                        "wait_until must be \"Verified\" or \"Placed\", not {:?}",
                        printable(name)
                    )
                }),
        }
    }

    /// Replicas as configured: 1 to [`REPLICAS_MAX`], 1 if not set.
    fn replicas(&self) -> Result<usize, String> {
        if self.replicas.is_unknown() {
            return Err("replicas is not known yet".into());
        }
        match self.replicas.as_ref_option() {
            None => Ok(1),
            Some(&replicas) => usize::try_from(replicas)
                .ok()
                .filter(|replicas| (1..=REPLICAS_MAX).contains(replicas))
                .ok_or_else(|| format!("replicas must be 1 to {REPLICAS_MAX}, not {replicas}")),
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

    /// Takes `open` (not empty) as the resource's leases: the first is its id.
    fn adopt(&mut self, open: &[Open]) {
        if let Some(first) = open.first() {
            self.id = first.id.to_string().into();
        }
        self.replicas = (open.len() as i64).into();
        self.lease_ids = Value::Value(open.iter().map(|o| o.id.to_string().into()).collect());
    }

    /// Fills the computed attributes from the open leases, oldest first.
    fn observed(&mut self, open: &[Open]) {
        let endpoint = |o: &Open| {
            let environment = o.environment.as_deref();
            environment
                .map(|e| e.endpoint.as_str().to_string())
                .unwrap_or_default()
        };
        let escrow = open
            .iter()
            .fold(0u128, |sum, o| sum.saturating_add(o.record.escrow.0));
        self.escrow = escrow.to_string().into();
        self.ports = Value::Value(BTreeMap::new());
        if let Some(first) = open.first() {
            self.region = i64::from(first.record.region.get()).into();
            self.endpoint = endpoint(first).into();
            self.ports = Value::Value(published(first.environment.as_deref()));
        }
        let least = open
            .iter()
            .map(|o| status(o.environment.as_deref()))
            .min_by_key(|status| STATUSES.iter().position(|s| s == status));
        self.status = least.unwrap_or("Pending").to_string().into();
        self.endpoints = Value::Value(open.iter().map(|o| endpoint(o).into()).collect());
    }

    /// Marks what a change of the leases changes as known only after apply.
    fn unknown_observations(&mut self) {
        self.status = ValueString::Unknown;
        self.endpoint = ValueString::Unknown;
        self.escrow = ValueString::Unknown;
        self.endpoints = Value::Unknown;
        self.ports = Value::Unknown;
    }

    /// Takes from `fresh` the computed attributes the plan left unknown: a value the plan
    /// knew must come back as planned (Terraform refuses an apply that changes it), and the
    /// next refresh shows what moved since.
    fn settle(&mut self, fresh: LeaseState<'a>) {
        fn take<T>(planned: &mut Value<T>, fresh: Value<T>) {
            if planned.is_unknown() {
                *planned = fresh;
            }
        }
        take(&mut self.id, fresh.id);
        take(&mut self.status, fresh.status);
        take(&mut self.endpoint, fresh.endpoint);
        take(&mut self.escrow, fresh.escrow);
        take(&mut self.lease_ids, fresh.lease_ids);
        take(&mut self.endpoints, fresh.endpoints);
        take(&mut self.ports, fresh.ports);
    }

    /// Marks the computed attributes as known only after apply.
    fn unknown_after_apply(&mut self) {
        self.unknown_observations();
        self.id = ValueString::Unknown;
        self.lease_ids = Value::Unknown;
    }
}

/// What the provider keeps in the state beside the attributes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeasePrivate {
    /// Lease id → the full-node key the provider registered for its workload (deregistered
    /// exactly when the lease is closed). A state of the provider before replicas held one
    /// key, of the state's `id`: it is read as [`FIRST_LEASE`]'s.
    #[serde(deserialize_with = "registered_keys")]
    pub registered: BTreeMap<String, String>,
}

/// The key of [`LeasePrivate::registered`] that stands for the state's first lease.
const FIRST_LEASE: &str = "first";

/// [`LeasePrivate::registered`] as this provider writes it (a map), or as the provider before
/// replicas did (one key, or none).
fn registered_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Registered {
        Keys(BTreeMap<String, String>),
        One(Option<String>),
    }
    Ok(match Registered::deserialize(deserializer)? {
        Registered::Keys(keys) => keys,
        Registered::One(key) => key
            .into_iter()
            .map(|key| (FIRST_LEASE.to_string(), key))
            .collect(),
    })
}

impl LeasePrivate {
    /// The key registered for `id`'s workload, if any.
    fn key(&self, id: LeaseId) -> Option<NodeKey> {
        self.registered.get(&id.to_string())?.parse().ok()
    }

    /// Keeps the keys of `ids` only, the first lease's key of an older state under its id.
    fn keep(&mut self, ids: &[LeaseId], first: Option<LeaseId>) {
        if let (Some(key), Some(first)) = (self.registered.remove(FIRST_LEASE), first) {
            self.registered.entry(first.to_string()).or_insert(key);
        }
        self.registered
            .retain(|id, _| ids.iter().any(|lease| lease.to_string() == *id));
    }
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
    if config.replicas.is_value() {
        config.replicas()?;
    }
    if config.wait_until.is_value() {
        config.wait_until()?;
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

/// The leases of `ids` that are open, in order (closed ones are left out).
async fn read_open(connection: &Connection, ids: &[LeaseId]) -> Result<Vec<Open>, String> {
    let mut open = Vec::with_capacity(ids.len());
    for &id in ids {
        match read_lease(connection, id).await {
            Ok(Found::Open(record, environment)) => open.push(Open {
                id,
                record,
                environment,
            }),
            Ok(Found::Closed) => {}
            Err(reason) => return Err(format!("lease {id}: {reason}")),
        }
    }
    Ok(open)
}

#[async_trait]
impl Resource for LeaseResource {
    type State<'a> = LeaseState<'a>;
    type PrivateState<'a> = LeasePrivate;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};
        use AttributeType::{List, Map, Number, String};
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain(
                    "Leases of a catalog template (one per replica): each an environment on a \
                     provider, paid per verified block from its escrow.",
                ),
                attributes: map! {
                    "template" => attribute(String, Required,
                        "Name of the catalog template (see data.logos_catalog); changing it \
                         replaces the leases."),
                    "blocks" => attribute(Number, Required,
                        "Blocks of escrow bought for each lease over its life; raising it \
                         extends the leases in place, lowering it is refused."),
                    "region" => attribute(Number, OptionalComputed,
                        "Region id (default 1); changing it replaces the leases."),
                    "replicas" => attribute(Number, OptionalComputed,
                        "Leases of the template kept open, 1 (default) to 16; raising it \
                         leases more in place, lowering it closes the newest (refunded)."),
                    "id" => attribute(String, Computed, "The first lease's id."),
                    "status" => attribute(String, Computed,
                        "Verified, Ready, Scheduled or Pending: the least advanced lease's \
                         highest true condition."),
                    "endpoint" => attribute(String, Computed,
                        "host:port of the first lease's environment."),
                    "escrow" => attribute(String, Computed,
                        "Escrow left in all the leases, in the smallest token unit."),
                    "lease_ids" => attribute(List(Box::new(String)), Computed,
                        "Every open lease's id, oldest first."),
                    "endpoints" => attribute(List(Box::new(String)), Computed,
                        "Every open lease's host:port, in lease_ids order."),
                    "ports" => attribute(Map(Box::new(String)), Computed,
                        "The first lease's declared ports and where each is published, \
                         e.g. {\"9333\" = \"host:port\"}."),
                    "wait_until" => attribute(String, Optional,
                        "What apply waits for after leasing, up to 300 s a lease: \"Verified\" \
                         (default: healthy and cross-checked; a leased Logos full node is \
                         registered on the way) or \"Placed\" (its endpoint and ports are \
                         known: for a node that syncs only once its network dials it)."),
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
        let read = match state.leases() {
            Ok(ids) => read_open(&connection, &ids).await,
            Err(reason) => Err(reason),
        };
        match read {
            // All closed outside Terraform: the plan shows it deleted and creates it again.
            Ok(open) if open.is_empty() => None,
            // Some closed outside Terraform: the plan shows fewer replicas and leases again.
            Ok(open) => {
                let mut state = state;
                state.adopt(&open);
                state.observed(&open);
                Some((state, private_state))
            }
            Err(reason) => {
                diags.root_error("cannot read logos_lease", reason);
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
        if state.replicas.is_null() {
            state.replicas = 1.into();
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
        config_state: Self::State<'a>,
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
        // Not configured: one, as at create.
        if config_state.replicas.is_null() {
            state.replicas = 1.into();
        }
        // A state of the provider before replicas lists no leases yet.
        if prior_state.lease_ids.is_null() {
            state.lease_ids = Value::Unknown;
        }
        if !replace.is_empty() {
            state.unknown_after_apply();
            return Some((state, prior_private_state, replace));
        }
        // More or fewer replicas, or not known yet: the leases change.
        if state.replicas != prior_state.replicas {
            state.unknown_observations();
            state.lease_ids = Value::Unknown;
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
            _ => state.unknown_observations(),
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
        let mut private = planned_private_state;
        let ids = grow(&connection, &planned_state, Vec::new(), &mut private, diags).await;
        if ids.is_empty() {
            return None;
        }
        // Created from here on: whatever happens next, the state must keep them.
        let mut state = planned_state;
        refresh(&connection, &ids, &mut state, diags).await;
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
        // The leases still open (a refresh may be skipped, or stale).
        let open = match prior_state.leases() {
            Ok(ids) => read_open(&connection, &ids).await,
            Err(reason) => Err(reason),
        };
        let ids: Vec<LeaseId> = match open {
            Ok(open) => open.iter().map(|o| o.id).collect(),
            Err(reason) => {
                diags.root_error("cannot update logos_lease", reason);
                return None;
            }
        };
        let mut private = planned_private_state;
        private.keep(
            &ids,
            prior_state.leases().ok().and_then(|l| l.first().copied()),
        );
        let wanted = match planned_state.replicas() {
            Ok(wanted) => wanted,
            Err(reason) => {
                diags.root_error("cannot update logos_lease", reason);
                return None;
            }
        };
        // Fewer first, so that no lease about to close is extended.
        let ids = shrink(&connection, ids, wanted, &mut private, diags).await;
        if let Err(reason) = extend(&connection, &ids, &planned_state).await {
            diags.root_error("cannot extend the leases", reason);
            return None;
        }
        let ids = grow(&connection, &planned_state, ids, &mut private, diags).await;
        let mut state = planned_state;
        refresh(&connection, &ids, &mut state, diags).await;
        Some((state, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let connection = self.connection(diags)?;
        let ids = match prior_state.leases() {
            Ok(ids) => ids,
            Err(reason) => {
                diags.root_error("cannot close the leases", reason);
                return None;
            }
        };
        let mut private = planned_private_state;
        private.keep(&ids, ids.first().copied());
        let left = shrink(&connection, ids, 0, &mut private, diags).await;
        left.is_empty().then_some(())
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

/// Leases more until `ids` holds the planned replicas, then follows each new lease until it
/// is Verified (a leased full node's key registered on the way, kept in `private`). Returns
/// the leases there are: a failure is said in `diags` and stops the growth, never loses a
/// lease already paid for.
async fn grow(
    connection: &Connection,
    planned: &LeaseState<'_>,
    mut ids: Vec<LeaseId>,
    private: &mut LeasePrivate,
    diags: &mut Diagnostics,
) -> Vec<LeaseId> {
    let wanted = match planned.replicas() {
        Ok(wanted) => wanted,
        Err(reason) => {
            diags.root_error("cannot lease", reason);
            return ids;
        }
    };
    let mut created = Vec::new();
    while ids.len() < wanted {
        match create(connection, planned).await {
            Ok(id) => {
                ids.push(id);
                created.push(id);
            }
            Err(reason) => {
                diags.root_error("cannot create the lease", reason);
                break;
            }
        }
    }
    let timeout = Duration::from_secs(CREATE_TIMEOUT_S);
    let wallet = connection.wallet().ok();
    let until = planned.wait_until().unwrap_or(WaitUntil::Verified);
    for id in created {
        let waited = match until {
            WaitUntil::Placed => placed(connection, id, timeout).await.map(|()| None),
            WaitUntil::Verified => watch(&connection.client, id, timeout, wallet, &mut |_| {})
                .await
                .map(|milestones| milestones.registered)
                .map_err(shown),
        };
        match waited {
            Ok(Some(key)) => {
                private.registered.insert(id.to_string(), key.to_string());
            }
            Ok(None) => {}
            Err(reason) => diags.root_error(
                format!("lease {id} was created but is not {}", until.name()),
                reason,
            ),
        }
    }
    ids
}

/// Follows lease `id` until its environment reports where it is reachable, for at most
/// `timeout`.
async fn placed(connection: &Connection, id: LeaseId, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("not placed");
    loop {
        match read_lease(connection, id).await {
            Ok(Found::Closed) => return Err("it is closed".into()),
            Ok(Found::Open(_, Some(environment))) if !environment.endpoint.is_empty() => {
                return Ok(())
            }
            Ok(Found::Open(..)) => {}
            // A read that failed once may not fail again (the wait is bounded all the same).
            Err(reason) => last = reason,
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{last} within {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(PLACED_POLL_MS)).await;
    }
}

/// Buys each open lease of `ids` up to the planned blocks (what it was bought for is read on
/// chain, so a retry after a partial failure pays nothing twice).
async fn extend(
    connection: &Connection,
    ids: &[LeaseId],
    planned: &LeaseState<'_>,
) -> Result<(), String> {
    let target = planned.blocks()?;
    for open in read_open(connection, ids).await? {
        let added = target.saturating_sub(bought(&open.record));
        if added == 0 {
            continue;
        }
        let wallet = connection.wallet().map_err(shown)?;
        let call = Call::Market(market::Call::ExtendLease {
            lease: open.id,
            blocks: added,
        });
        let _turn = connection.submitting.lock().await;
        connection
            .client
            .execute(wallet, call)
            .await
            .map_err(|error| format!("lease {}: {}", open.id, shown(error)))?;
    }
    Ok(())
}

/// Closes the newest leases of `ids` until `wanted` are left (each refunded, its registered
/// full node deregistered; one already closed is skipped). Returns the leases left: a failure
/// is said in `diags` and keeps the lease it failed on.
async fn shrink(
    connection: &Connection,
    mut ids: Vec<LeaseId>,
    wanted: usize,
    private: &mut LeasePrivate,
    diags: &mut Diagnostics,
) -> Vec<LeaseId> {
    while ids.len() > wanted {
        let Some(&id) = ids.last() else { break };
        match close(connection, id, private.key(id)).await {
            Ok(warning) => {
                if let Some(warning) = warning {
                    diags.root_warning(
                        format!("lease {id} is closed; its full node is still registered"),
                        warning,
                    );
                }
                private.registered.remove(&id.to_string());
                ids.pop();
            }
            Err(reason) => {
                diags.root_error(format!("cannot close lease {id}"), reason);
                break;
            }
        }
    }
    ids
}

/// Closes lease `id` unless it is already closed (a warning if its full node could not be
/// deregistered after).
async fn close(
    connection: &Connection,
    id: LeaseId,
    registered: Option<NodeKey>,
) -> Result<Option<String>, String> {
    if let Found::Closed = read_lease(connection, id).await? {
        return Ok(None);
    }
    let wallet = connection.wallet().map_err(shown)?;
    let _turn = connection.submitting.lock().await;
    let closed = close_lease(&connection.client, wallet, id, registered)
        .await
        .map_err(shown)?;
    let warnings: Vec<String> = [closed.deregistration_error, closed.chill_error]
        .into_iter()
        .flatten()
        .collect();
    Ok((!warnings.is_empty()).then(|| shown(warnings.join("; "))))
}

/// The state of existing open leases of the provider's key (`terraform import`), named `ID`
/// or `ID,ID,…` (at most [`REPLICAS_MAX`], distinct, one template and region; oldest first,
/// as ids are given out): the template's name, the blocks the shortest was bought for (billed
/// plus what its escrow still pays; an extension tops the others up to no more) and what the
/// chain reports.
async fn import(connection: &Connection, text: &str) -> Result<LeaseState<'static>, String> {
    let ids = import_ids(text)?;
    connection.wallet().map_err(shown)?;
    let open = read_open(connection, &ids).await?;
    if open.len() < ids.len() {
        return Err("only open leases are imported: one is closed".into());
    }
    let first = &open[0].record;
    let blocks = open.iter().map(|o| bought(&o.record)).min().unwrap_or(0);
    if let Some(other) = open
        .iter()
        .find(|o| (o.record.template, o.record.region) != (first.template, first.region))
    {
        return Err(format!(
            "lease {} is of another template or region than lease {}",
            other.id, open[0].id
        ));
    }
    let entries = catalog(&connection.client).await.map_err(shown)?;
    let name = entries
        .iter()
        .find(|entry| entry.id == first.template)
        .map(|entry| entry.template.name.as_str().to_string())
        .ok_or_else(|| {
            format!(
                "lease {}'s template {} is not in the catalog",
                open[0].id, first.template
            )
        })?;
    let mut state = LeaseState {
        template: name.into(),
        blocks: i64::try_from(blocks).unwrap_or(i64::MAX).into(),
        ..Default::default()
    };
    state.adopt(&open);
    state.observed(&open);
    Ok(state)
}

/// The leases an import names: `ID` or `ID,ID,…`, at most [`REPLICAS_MAX`], distinct.
fn import_ids(text: &str) -> Result<Vec<LeaseId>, String> {
    let named: Vec<&str> = text.split(',').take(REPLICAS_MAX + 1).collect();
    if named.len() > REPLICAS_MAX {
        return Err(format!("at most {REPLICAS_MAX} leases are imported as one"));
    }
    let mut ids = named
        .into_iter()
        .map(|id| lease_id(id.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    if ids.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("a lease is named twice".into());
    }
    Ok(ids)
}

/// Fills the computed attributes the plan left unknown from the chain: `ids` are the leases,
/// the first the id (a warning if the chain cannot be read: then what is unknown is left
/// empty).
async fn refresh(
    connection: &Connection,
    ids: &[LeaseId],
    state: &mut LeaseState<'_>,
    diags: &mut Diagnostics,
) {
    let mut fresh = state.clone();
    fresh.id = ids
        .first()
        .map(|id| id.to_string())
        .unwrap_or_default()
        .into();
    fresh.lease_ids = Value::Value(ids.iter().map(|id| id.to_string().into()).collect());
    fresh.status = "Pending".to_string().into();
    fresh.endpoint = String::new().into();
    fresh.escrow = "0".to_string().into();
    fresh.endpoints = Value::Value(Vec::new());
    fresh.ports = Value::Value(BTreeMap::new());
    match read_open(connection, ids).await {
        Ok(open) if open.is_empty() => {
            diags.root_warning_short("the leases are closed");
            fresh.status = "Closed".to_string().into();
        }
        Ok(open) => fresh.observed(&open),
        Err(reason) => diags.root_warning("cannot read the leases", reason),
    }
    state.settle(fresh);
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
        assert_eq!(state.leases(), Ok(vec![LeaseId(7)]));
        for forged in ["-1", "0x7", "7; rm -rf /", "", "18446744073709551616"] {
            state.id = forged.to_string().into();
            assert!(state.leases().is_err(), "{forged}");
        }
        // With replicas, the list is the leases; one forged entry refuses the state.
        let listed = |ids: &[&str]| -> ValueList<ValueString<'static>> {
            Value::Value(ids.iter().map(|id| id.to_string().into()).collect())
        };
        state.lease_ids = listed(&["7", "9"]);
        assert_eq!(state.leases(), Ok(vec![LeaseId(7), LeaseId(9)]));
        state.lease_ids = listed(&["7", "x"]);
        assert!(state.leases().is_err());
        let many: Vec<String> = (0..=REPLICAS_MAX).map(|i| i.to_string()).collect();
        state.lease_ids = Value::Value(many.into_iter().map(Into::into).collect());
        assert!(state.leases().unwrap_err().contains("more than"));
    }

    #[test]
    fn a_private_state_of_the_provider_before_replicas_is_read() {
        let key = "0x".to_string() + &"ab".repeat(32);
        let old = serde_json::json!({ "registered": key });
        let mut private: LeasePrivate = serde_json::from_value(old).unwrap();
        private.keep(&[LeaseId(7), LeaseId(9)], Some(LeaseId(7)));
        assert_eq!(private.registered.get("7"), Some(&key));
        for none in [
            serde_json::json!({ "registered": null }),
            serde_json::json!({}),
        ] {
            let private: LeasePrivate = serde_json::from_value(none).unwrap();
            assert!(private.registered.is_empty());
        }
        // As Terraform stores it (MessagePack), old and new alike.
        let old = rmp_serde::to_vec_named(&serde_json::json!({ "registered": key })).unwrap();
        let read: LeasePrivate = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(read.registered.get(FIRST_LEASE), Some(&key));
        let new = rmp_serde::to_vec_named(&private).unwrap();
        let read: LeasePrivate = rmp_serde::from_slice(&new).unwrap();
        assert_eq!(read.registered, private.registered);
        // Keys of leases no longer in the state are dropped.
        let mut kept = LeasePrivate::default();
        kept.registered.insert("9".into(), key.clone());
        kept.keep(&[LeaseId(7)], Some(LeaseId(7)));
        assert!(kept.registered.is_empty());
        // A forged type is refused, not read as no key.
        assert!(
            serde_json::from_value::<LeasePrivate>(serde_json::json!({ "registered": 7 })).is_err()
        );
    }

    #[test]
    fn ports_are_published_at_the_endpoints_host_and_a_plan_known_value_is_kept() {
        use logos_types::{
            catalog::TemplateId,
            dvci::ProviderId,
            operations::{PortMapping, Spec},
        };
        assert!(published(None).is_empty());
        let tenant = logos_primitives::Address::default();
        let mut environment =
            Environment::new(tenant, ProviderId(0), TemplateId(0), Spec::default(), 1);
        let mapping = |port, published| PortMapping { port, published };
        environment.ports = vec![mapping(9333, 24_000), mapping(8080, 24_001)]
            .try_into()
            .unwrap();
        // Not placed yet: nothing to dial.
        assert!(published(Some(&environment)).is_empty());
        environment.endpoint = "10.88.1.1:24001".try_into().unwrap();
        let ports = published(Some(&environment));
        assert_eq!(ports["9333"].as_deref_option(), Some("10.88.1.1:24000"));
        assert_eq!(ports["8080"].as_deref_option(), Some("10.88.1.1:24001"));

        // What the plan knew stays; what it left unknown is filled.
        let mut planned = config("a", 1);
        planned.escrow = "500".to_string().into();
        planned.unknown_observations();
        planned.id = "7".to_string().into();
        let mut fresh = planned.clone();
        fresh.id = "9".to_string().into();
        fresh.status = "Verified".to_string().into();
        planned.settle(fresh);
        assert_eq!(planned.id.as_deref_option(), Some("7"));
        assert_eq!(planned.status.as_deref_option(), Some("Verified"));
        assert!(planned.escrow.is_unknown(), "fresh had it unknown too");
    }

    #[test]
    fn wait_until_is_verified_unless_placed_is_asked_for() {
        let mut state = config("a", 1);
        assert_eq!(state.wait_until(), Ok(WaitUntil::Verified));
        for until in [WaitUntil::Verified, WaitUntil::Placed] {
            state.wait_until = until.name().to_string().into();
            assert_eq!((state.wait_until(), check(&state)), (Ok(until), Ok(())));
        }
        for forged in ["", "verified", "Running", "Placed\u{202e}", "Verified "] {
            state.wait_until = forged.to_string().into();
            let refused = check(&state).unwrap_err();
            assert!(refused.contains("wait_until"), "{forged:?}");
            assert!(!refused.contains('\u{202e}'), "shown printable: {refused}");
        }
    }

    #[test]
    fn replicas_are_bounded_and_default_to_one() {
        let mut state = config("a", 1);
        assert_eq!(state.replicas(), Ok(1));
        for replicas in [1, 16] {
            state.replicas = replicas.into();
            assert_eq!(state.replicas(), Ok(replicas as usize));
            assert_eq!(check(&state), Ok(()));
        }
        for replicas in [0, -1, 17, i64::MIN, i64::MAX] {
            state.replicas = replicas.into();
            assert!(
                check(&state).unwrap_err().contains("replicas"),
                "{replicas}"
            );
        }
        state.replicas = ValueNumber::Unknown;
        assert_eq!(check(&state), Ok(()));
        assert!(state.replicas().is_err(), "unknown is not one");
    }

    #[test]
    fn an_import_names_distinct_lease_ids() {
        assert_eq!(import_ids("7"), Ok(vec![LeaseId(7)]));
        assert_eq!(import_ids("7, 9"), Ok(vec![LeaseId(7), LeaseId(9)]));
        assert_eq!(
            import_ids("9,7"),
            Ok(vec![LeaseId(7), LeaseId(9)]),
            "oldest first"
        );
        assert!(import_ids("7,7").unwrap_err().contains("twice"));
        for forged in ["", ",", "7,", "7;9", "x", "-7"] {
            assert!(import_ids(forged).is_err(), "{forged:?}");
        }
        let many = vec!["1"; REPLICAS_MAX + 1].join(",");
        assert!(import_ids(&many).unwrap_err().contains("at most"));
        // A huge import is refused before any parsing.
        assert!(import_ids(&",".repeat(1 << 20)).is_err());
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
