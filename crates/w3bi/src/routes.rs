//! The console's routes: pages (GET), actions (POST with the form token), the live streams
//! (`/events`, a lease's logs) and a lease's signed stats as JSON.

use crate::{chain, guard, live, pages, Console};
use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::{header, StatusCode},
    middleware,
    response::{
        sse::{Event, KeepAlive, Sse},
        Html, IntoResponse, Redirect, Response,
    },
    routing::{get, post},
    Form, Json, Router,
};
use futures::Stream;
use logos_client::{
    agent,
    tenant::{catalog, close_lease, create_lease, lease_status, watch, CatalogEntry},
    ClientError, Wallet,
};
use logos_types::{
    catalog::TemplateId,
    dvci::RegionId,
    governance::{self, ProposalId},
    market::{self, LeaseId},
    operations::{self, EnvironmentId},
    Call,
};
use maud::Markup;
use serde::Deserialize;
use std::{collections::BTreeMap, convert::Infallible, sync::Arc, time::Duration};

/// Largest request body, bytes (the console's forms are a few fields).
pub const BODY_MAX_BYTES: usize = 16 * 1024;
/// Bytes of earlier logs a log stream starts with.
pub const LOGS_TAIL_BYTES: u64 = 16 * 1024;
/// Bytes one log stream relays before it ends (the page can reopen it).
pub const LOGS_STREAM_MAX_BYTES: usize = 4 * 1024 * 1024;
/// A log line relayed in pieces past this length, bytes (a workload that never ends a line
/// cannot make the console hold its output).
pub const LINE_MAX_BYTES: usize = 64 * 1024;
/// How long a new lease is followed to register a leased full node's key, s.
pub const WATCH_TIMEOUT_S: u64 = 300;
/// Region of leases deployed from the catalog.
pub const REGION: RegionId = RegionId(1);
/// Most blocks one deploy or extension buys (about 115 days at 1 block/s): a mistyped number
/// cannot lock a fortune in escrow.
pub const BLOCKS_MAX: u64 = 10_000_000;

/// The console's router, behind [`guard::guard`].
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/catalog", get(catalog_page))
        .route("/providers", get(providers_page))
        .route("/network", get(network_page))
        .route("/governance", get(governance_page))
        .route("/leases", post(deploy))
        .route("/leases/{id}", get(lease_page))
        .route("/leases/{id}/extend", post(extend))
        .route("/leases/{id}/update", post(update))
        .route("/leases/{id}/replica", post(replica))
        .route("/leases/{id}/close", post(close))
        .route("/leases/{id}/logs", get(logs))
        .route("/leases/{id}/stats", get(stats))
        .route("/governance/{id}/vote", post(vote))
        .route("/fragments/leases", get(leases_fragment))
        .route("/fragments/leases/{id}", get(lease_fragment))
        .route("/events", get(events))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(style))
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            guard::guard,
        ))
        .with_state(console)
}

/// An error shown as a page with its status.
pub struct Failure(StatusCode, String);

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let status = match error {
            ClientError::Missing(_) => StatusCode::NOT_FOUND,
            ClientError::CallFailed { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        };
        Failure(status, error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Error · Logos console" } link rel="stylesheet" href="/assets/console.css"; }
                body { main { h1 { "Something went wrong" } (pages::error(&self.1)) } }
            }
        };
        (self.0, Html(page.into_string())).into_response()
    }
}

type Page = Result<Html<String>, Failure>;

fn page(console: &Console, title: &str, content: Markup) -> Page {
    Ok(Html(pages::layout(console, title, content).into_string()))
}

fn wallet(console: &Console) -> Result<&Wallet, Failure> {
    console.wallet.as_ref().ok_or(Failure(
        StatusCode::FORBIDDEN,
        "the console is read-only: start it with --from KEY to act".into(),
    ))
}

/// Checks the form token.
fn authorized(console: &Console, token: &str) -> Result<(), Failure> {
    match guard::token_matches(token, &console.token) {
        true => Ok(()),
        false => Err(Failure(
            StatusCode::FORBIDDEN,
            "this form did not come from the console (stale or forged token): reload the page"
                .into(),
        )),
    }
}

async fn template_names(console: &Console) -> Result<BTreeMap<TemplateId, String>, Failure> {
    Ok(catalog(&console.client)
        .await?
        .into_iter()
        .map(|entry: CatalogEntry| (entry.id, entry.template.name.as_str().to_string()))
        .collect())
}

async fn home(State(console): State<Arc<Console>>) -> Page {
    page(&console, "My leases", leases_markup(&console).await?)
}

async fn leases_markup(console: &Console) -> Result<Markup, Failure> {
    let Some(wallet) = &console.wallet else {
        return Ok(
            maud::html! { p { "Read-only console: start it with --from KEY to see your leases." } },
        );
    };
    let rows = chain::tenant_leases(&console.client, wallet.address()).await?;
    Ok(pages::leases(&rows, &template_names(console).await?))
}

async fn leases_fragment(State(console): State<Arc<Console>>) -> Result<Html<String>, Failure> {
    let wallet = wallet(&console)?;
    let rows = chain::tenant_leases(&console.client, wallet.address()).await?;
    let names = template_names(&console).await?;
    Ok(Html(pages::leases_fragment(&rows, &names).into_string()))
}

async fn catalog_page(State(console): State<Arc<Console>>) -> Page {
    let entries = catalog(&console.client).await?;
    page(&console, "Catalog", pages::catalog(&console, &entries))
}

async fn providers_page(State(console): State<Arc<Console>>) -> Page {
    let rows = chain::providers(&console.client).await?;
    page(&console, "Providers", pages::providers(&rows))
}

async fn network_page(State(console): State<Arc<Console>>) -> Page {
    let providers = chain::providers(&console.client).await?;
    let view = chain::network(&console.client, &providers).await?;
    page(
        &console,
        "Network",
        pages::network(&console.heads.pace(), &view),
    )
}

async fn governance_page(State(console): State<Arc<Console>>) -> Page {
    let voter = console.wallet.as_ref().map(Wallet::address);
    let rows = chain::proposals(&console.client, voter).await?;
    page(&console, "Governance", pages::governance(&console, &rows))
}

/// Lease `id`'s status and its template's name.
async fn lease_and_name(
    console: &Console,
    id: u64,
) -> Result<(logos_client::tenant::LeaseStatus, String), Failure> {
    let status = lease_status(&console.client, LeaseId(id)).await?;
    let names = template_names(console).await?;
    let name = names
        .get(&status.record.template)
        .cloned()
        .unwrap_or_default();
    Ok((status, name))
}

async fn lease_page(State(console): State<Arc<Console>>, Path(id): Path<u64>) -> Page {
    let (status, name) = lease_and_name(&console, id).await?;
    let content = pages::lease(&console, &status, &name);
    page(&console, &format!("Lease #{id}"), content)
}

async fn lease_fragment(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
) -> Result<Html<String>, Failure> {
    let (status, name) = lease_and_name(&console, id).await?;
    Ok(Html(pages::lease_fragment(&status, &name).into_string()))
}

/// A deploy form.
#[derive(Deserialize)]
pub struct DeployForm {
    token: String,
    template: u32,
    blocks: u64,
}

async fn deploy(
    State(console): State<Arc<Console>>,
    Form(form): Form<DeployForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    let id = lease_template(&console, TemplateId(form.template), REGION, form.blocks).await?;
    Ok(Redirect::to(&format!("/leases/{id}")))
}

/// Leases `template` for `blocks` and follows it in the background (registering a leased full
/// node's key, as `logos lease create --wait` does).
async fn lease_template(
    console: &Arc<Console>,
    template: TemplateId,
    region: RegionId,
    blocks: u64,
) -> Result<LeaseId, Failure> {
    let wallet = wallet(console)?;
    check_blocks(blocks)?;
    let (id, _) = {
        let _turn = console.submitting.lock().await;
        create_lease(&console.client, wallet, template, region, blocks).await?
    };
    if let Ok(permit) = console.watchers.clone().try_acquire_owned() {
        let console = console.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(wallet) = &console.wallet else {
                return;
            };
            let timeout = Duration::from_secs(WATCH_TIMEOUT_S);
            let _ = watch(&console.client, id, timeout, Some(wallet), &mut |_| {}).await;
        });
    }
    Ok(id)
}

/// Refuses 0 blocks (a fee for nothing) and more than [`BLOCKS_MAX`].
fn check_blocks(blocks: u64) -> Result<(), Failure> {
    match blocks {
        1..=BLOCKS_MAX => Ok(()),
        _ => Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("blocks must be 1 to {BLOCKS_MAX}, not {blocks}"),
        )),
    }
}

/// A form with only the token.
#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// An extend form.
#[derive(Deserialize)]
pub struct ExtendForm {
    token: String,
    blocks: u64,
}

/// Refuses an action on a lease the console's account is not the tenant of (before paying a
/// fee for the chain to refuse it) or that is closed.
async fn own_open_lease(
    console: &Console,
    id: LeaseId,
) -> Result<logos_client::tenant::LeaseStatus, Failure> {
    let wallet = wallet(console)?;
    let status = lease_status(&console.client, id).await?;
    if status.record.tenant != wallet.address() {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            format!(
                "lease {id} belongs to {}, not to this console's account",
                status.record.tenant
            ),
        ));
    }
    if status.record.closed.is_some() {
        return Err(Failure(
            StatusCode::CONFLICT,
            format!("lease {id} is closed"),
        ));
    }
    Ok(status)
}

async fn execute(console: &Console, call: Call) -> Result<(), Failure> {
    let wallet = wallet(console)?;
    let _turn = console.submitting.lock().await;
    console.client.execute(wallet, call).await?;
    Ok(())
}

async fn extend(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
    Form(form): Form<ExtendForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    let lease = LeaseId(id);
    check_blocks(form.blocks)?;
    own_open_lease(&console, lease).await?;
    execute(
        &console,
        Call::Market(market::Call::ExtendLease {
            lease,
            blocks: form.blocks,
        }),
    )
    .await?;
    Ok(Redirect::to(&format!("/leases/{id}")))
}

async fn update(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    own_open_lease(&console, LeaseId(id)).await?;
    let environment = EnvironmentId(id);
    execute(
        &console,
        Call::Operations(operations::Call::UpdateEnvironment { environment }),
    )
    .await?;
    Ok(Redirect::to(&format!("/leases/{id}")))
}

async fn replica(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    let status = own_open_lease(&console, LeaseId(id)).await?;
    // As many blocks as the lease has left, in its region (read proven with a genesis).
    let blocks = pages::blocks_left(&status.record)
        .and_then(|blocks| u64::try_from(blocks).ok())
        .ok_or(Failure(
            StatusCode::CONFLICT,
            format!("lease {id} has no escrow left to match: extend it first"),
        ))?;
    let record = &status.record;
    let replica = lease_template(&console, record.template, record.region, blocks).await?;
    Ok(Redirect::to(&format!("/leases/{replica}")))
}

async fn close(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    own_open_lease(&console, LeaseId(id)).await?;
    let wallet = wallet(&console)?;
    {
        let _turn = console.submitting.lock().await;
        close_lease(&console.client, wallet, LeaseId(id), None).await?;
    }
    Ok(Redirect::to(&format!("/leases/{id}")))
}

/// A vote form.
#[derive(Deserialize)]
pub struct VoteForm {
    token: String,
    aye: bool,
}

async fn vote(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
    Form(form): Form<VoteForm>,
) -> Result<Redirect, Failure> {
    authorized(&console, &form.token)?;
    let call = Call::Governance(governance::Call::Vote {
        proposal: ProposalId(id),
        aye: form.aye,
    });
    execute(&console, call).await?;
    Ok(Redirect::to("/governance"))
}

async fn stats(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, Failure> {
    let wallet = wallet(&console)?;
    let (stats, key) = agent::stats(&console.client, wallet, EnvironmentId(id)).await?;
    let usage = stats.usage;
    Ok(Json(serde_json::json!({
        "measured_at_ms": stats.measured_at_ms,
        "cpu_usage_us": usage.cpu_usage_us,
        "memory_bytes": usage.memory_bytes,
        "memory_limit_bytes": usage.memory_limit_bytes,
        "disk_used_bytes": usage.disk_used_bytes,
        "disk_size_bytes": usage.disk_size_bytes,
        "signed_by": key.to_string(),
    })))
}

/// `GET /leases/{id}/logs`: the environment's logs as server-sent `line` events (the last
/// [`LOGS_TAIL_BYTES`], then followed), at most [`LOGS_STREAM_MAX_BYTES`] per stream and
/// [`crate::STREAMS_MAX`] streams at once.
async fn logs(
    State(console): State<Arc<Console>>,
    Path(id): Path<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let permit = console.streams.clone().try_acquire_owned().map_err(|_| {
        Failure(
            StatusCode::TOO_MANY_REQUESTS,
            "too many log streams open".into(),
        )
    })?;
    let wallet = wallet(&console)?;
    let response =
        agent::logs_followed(&console.client, wallet, EnvironmentId(id), LOGS_TAIL_BYTES).await?;
    let relay = LogRelay {
        response: Some(response),
        carried: Vec::new(),
        relayed: 0,
        _permit: permit,
    };
    let stream = futures::stream::unfold(relay, |mut relay| async move {
        let event = relay.next().await?;
        Some((Ok(event), relay))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A log stream being relayed: the agent's answer (none once ended), the partial line held
/// back, the bytes relayed so far and the stream's permit.
struct LogRelay {
    response: Option<reqwest::Response>,
    carried: Vec<u8>,
    relayed: usize,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl LogRelay {
    /// The next event: `lines` (whole lines; a partial one past [`LINE_MAX_BYTES`]), then one
    /// `end` when the agent ends the stream or [`LOGS_STREAM_MAX_BYTES`] were relayed (the page
    /// stops listening instead of reconnecting and replaying the tail), then nothing.
    async fn next(&mut self) -> Option<Event> {
        let response = self.response.as_mut()?;
        let chunk = match self.relayed < LOGS_STREAM_MAX_BYTES {
            true => response.chunk().await.ok().flatten(),
            false => None,
        };
        let Some(chunk) = chunk else {
            self.response = None;
            let rest = std::mem::take(&mut self.carried);
            return Some(Event::default().event("end").data(sse_text(&rest)));
        };
        self.relayed = self.relayed.saturating_add(chunk.len());
        self.carried.extend_from_slice(&chunk);
        let cut = match self.carried.iter().rposition(|byte| *byte == b'\n') {
            Some(at) => at + 1,
            None if self.carried.len() > LINE_MAX_BYTES => self.carried.len(),
            None => 0,
        };
        let lines: Vec<u8> = self.carried.drain(..cut).collect();
        Some(Event::default().event("lines").data(sse_text(&lines)))
    }
}

/// `bytes` as the text of one event: lossy UTF-8, the final newline dropped, and carriage
/// returns shown as `\r` (an event's data cannot carry them).
pub fn sse_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\n')
        .replace('\r', "\\r")
}

async fn events(State(console): State<Arc<Console>>) -> impl IntoResponse {
    live::events(&console)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/console.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/console.css"),
    )
}
