//! The console's HTML, rendered on the server with `maud` (every value is escaped). Each page
//! is the layout (navigation, the live pace line, the account) around its content; the parts
//! that change with the chain are fragments the script reloads at each finalized head.

use crate::{
    attestation::components,
    chain::{LeaseRow, NetworkView, ProposalRow, ProviderRow},
    live::Pace,
    Console,
};
use logos_client::{
    tenant::{CatalogEntry, LeaseStatus},
    text::printable,
};
use logos_types::{
    catalog::TemplateId,
    governance::ProposalStatus,
    market::Lease,
    operations::{ConditionStatus, ConditionType, Environment},
};
use maud::{html, Markup, DOCTYPE};
use std::collections::BTreeMap;

/// Blocks a deploy form offers by default (about 10 hours at 1 block/s).
pub const DEFAULT_BLOCKS: u64 = 36_000;

/// The page around `content`.
pub fn layout(console: &Console, title: &str, content: Markup) -> Markup {
    let pace = console.heads.pace();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Logos console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "Logos" }
                    nav aria-label="Main" {
                        a href="/" { "My leases" }
                        a href="/catalog" { "Catalog" }
                        a href="/providers" { "Providers" }
                        a href="/network" { "Network" }
                        a href="/governance" { "Governance" }
                    }
                    p.pace {
                        "Finalized " strong data-live="height" { (pace.height) }
                        " · finality " strong data-live="latency_ms" { (pace.latency_ms) } " ms"
                    }
                    p.account {
                        @match &console.wallet {
                            Some(wallet) => { "Signing as " code { (wallet.address()) } }
                            None => { "Read-only (start with --from KEY to act)" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A form that posts to `action` with the console's token and a submit button `label`.
pub fn action(console: &Console, path: &str, label: &str, fields: Markup) -> Markup {
    action_labelled(console, path, label, label, fields)
}

/// [`action`] with a longer name for assistive technology (`aria-label`).
pub fn action_labelled(
    console: &Console,
    path: &str,
    label: &str,
    name: &str,
    fields: Markup,
) -> Markup {
    let confirm = Confirm {
        question: None,
        price: None,
    };
    action_confirmed(console, (path, label, name), confirm, fields)
}

/// What the script asks before a form that spends or closes is sent (`data-confirm`): the
/// question, and for a deploy the price per block, so that it shows the escrow the chosen
/// blocks take (price × blocks, in the smallest unit).
pub struct Confirm {
    /// The question (none: sent without asking).
    pub question: Option<String>,
    /// Price per block, smallest unit (a deploy).
    pub price: Option<String>,
}

/// [`action_labelled`] that asks `confirm` first (with the script; without it, the form is
/// sent as it is).
pub fn action_confirmed(
    console: &Console,
    (path, label, name): (&str, &str, &str),
    confirm: Confirm,
    fields: Markup,
) -> Markup {
    html! {
        form method="post" action=(path) data-confirm=[confirm.question] data-price=[confirm.price] {
            input type="hidden" name="token" value=(console.token);
            (fields)
            button type="submit" aria-label=(name) { (label) }
        }
    }
}

/// An error page's content.
pub fn error(message: &str) -> Markup {
    html! {
        p.error role="alert" { (message) }
        p { a href="/" { "Back to your leases" } }
    }
}

/// The highest condition of `environment` that is true.
pub fn status(environment: Option<&Environment>) -> &'static str {
    let Some(environment) = environment else {
        return "Destroyed";
    };
    let true_ = |kind| environment.condition(kind).status == ConditionStatus::True;
    match () {
        _ if true_(ConditionType::Verified) => "Verified",
        _ if true_(ConditionType::Ready) => "Ready",
        _ if true_(ConditionType::Scheduled) => "Scheduled",
        _ => "Pending",
    }
}

/// Blocks the escrow still pays at the lease's rate.
pub fn blocks_left(lease: &Lease) -> Option<u128> {
    lease.escrow.0.checked_div(lease.rate.0)
}

fn template_name(names: &BTreeMap<TemplateId, String>, id: TemplateId) -> String {
    names
        .get(&id)
        .map(|name| printable(name))
        .unwrap_or_else(|| format!("template {id}"))
}

/// `/`: the console account's leases, in a container the script refreshes.
pub fn leases(rows: &[LeaseRow], names: &BTreeMap<TemplateId, String>) -> Markup {
    html! {
        div data-fragment="/fragments/leases" { (leases_fragment(rows, names)) }
    }
}

/// The inside of the leases container.
pub fn leases_fragment(rows: &[LeaseRow], names: &BTreeMap<TemplateId, String>) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No leases yet. " a href="/catalog" { "Deploy one from the catalog." } }
        } @else {
            table {
                caption { "Your leases, newest first" }
                thead { tr {
                    th scope="col" { "Lease" } th scope="col" { "Template" }
                    th scope="col" { "Status" } th scope="col" { "Endpoint" }
                    th scope="col" { "Escrow left" } th scope="col" { "Blocks left" }
                } }
                tbody {
                    @for row in rows {
                        tr {
                            td { a href={ "/leases/" (row.id) } { "#" (row.id) } }
                            td { (template_name(names, row.record.template)) }
                            td.status data-status=(lease_state(row)) { (lease_state(row)) }
                            td { code { (printable(row.environment.as_ref().map(|e| e.endpoint.as_str()).unwrap_or("-"))) } }
                            td.number { (row.record.escrow) }
                            td.number { (blocks_left(&row.record).map_or("-".into(), |b| b.to_string())) }
                        }
                    }
                }
            }
        }
    }
}

fn lease_state(row: &LeaseRow) -> &'static str {
    match row.record.closed {
        Some(_) => "Closed",
        None => status(row.environment.as_ref()),
    }
}

/// `/catalog`: every template with its resources, its live price and a deploy form.
pub fn catalog(console: &Console, entries: &[CatalogEntry]) -> Markup {
    html! {
        table {
            caption { "Templates and their price per block (smallest token unit), as finalized" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Template" } th scope="col" { "Product" }
                th scope="col" { "vCPU" } th scope="col" { "Memory (MiB)" }
                th scope="col" { "Disk (GiB)" } th scope="col" { "Price / block" }
                th scope="col" { "Deploy" }
            } }
            tbody {
                @for entry in entries {
                    @let resources = entry.product.as_ref().map(|product| product.resources);
                    @let name = printable(entry.template.name.as_str());
                    tr {
                        td.number { (entry.id) }
                        th scope="row" { (name) }
                        td { (printable(entry.product.as_ref().map_or("-", |p| p.name.as_str()))) }
                        td.number { (resources.map_or("-".into(), |r| r.vcpu.to_string())) }
                        td.number { (resources.map_or("-".into(), |r| r.memory_mib.to_string())) }
                        td.number { (resources.map_or("-".into(), |r| r.disk_gib.to_string())) }
                        td.number { (entry.price_per_block.map_or("-".into(), |p| p.to_string())) }
                        td {
                            @if console.wallet.is_some() {
                                @let confirm = Confirm {
                                    question: Some(format!("Deploy {name} (template {})?", entry.id)),
                                    price: entry.price_per_block.map(|p| p.to_string()),
                                };
                                (action_confirmed(console, ("/leases", "Deploy", &format!("Deploy {name} (template {})", entry.id)), confirm, html! {
                                    input type="hidden" name="template" value=(entry.id);
                                    label { "Blocks "
                                        input type="number" name="blocks" min="1"
                                            value=(DEFAULT_BLOCKS) required;
                                    }
                                }))
                            } @else { "-" }
                        }
                    }
                }
            }
        }
    }
}

/// `/leases/{id}`: the live status, the actions, the logs and the charts.
pub fn lease(console: &Console, status: &LeaseStatus, name: &str) -> Markup {
    let id = status.lease;
    let open = status.record.closed.is_none();
    html! {
        section aria-labelledby="state" data-fragment={ "/fragments/leases/" (id) } {
            (lease_fragment(status, name))
        }
        @if open && console.wallet.is_some() {
            section.actions aria-label="Actions" {
                @let confirm = Confirm {
                    question: Some(format!("Extend lease {id}?")),
                    price: Some(status.record.rate.to_string()),
                };
                (action_confirmed(console, (&format!("/leases/{id}/extend"), "Extend", "Extend"), confirm, html! {
                    label { "Blocks " input type="number" name="blocks" min="1" value="1000" required; }
                }))
                (action(console, &format!("/leases/{id}/update"), "Update (new generation)", html! {}))
                (action(console, &format!("/leases/{id}/replica"), "Add a replica", html! {}))
                @let confirm = Confirm {
                    question: Some(format!("Close lease {id} and stop its workload? What is left of its escrow comes back to you; a validator candidacy of yours at this lease's address is dropped too.")),
                    price: None,
                };
                (action_confirmed(console, (&format!("/leases/{id}/close"), "Close and refund", "Close and refund"), confirm, html! {}))
            }
        }
        @if open {
            section aria-labelledby="usage" {
                h2 id="usage" { "Resource use" }
                p.note { "Signed by the provider's agent key, checked against the chain." }
                div.charts data-stats={ "/leases/" (id) "/stats" } {
                    figure { figcaption { "CPU (% of one vCPU)" } svg data-chart="cpu" viewBox="0 0 300 80" role="img" aria-label="CPU use" {} }
                    figure { figcaption { "Memory (MiB)" } svg data-chart="memory" viewBox="0 0 300 80" role="img" aria-label="Memory use" {} }
                    figure { figcaption { "Disk (MiB)" } svg data-chart="disk" viewBox="0 0 300 80" role="img" aria-label="Disk use" {} }
                }
                p.error data-stats-error hidden {}
            }
            section aria-labelledby="logs" {
                h2 id="logs" { "Logs" }
                pre.logs data-logs={ "/leases/" (id) "/logs" } tabindex="0" aria-live="off" {}
            }
        }
    }
}

/// The part of a lease page that changes with the chain.
pub fn lease_fragment(status: &LeaseStatus, name: &str) -> Markup {
    let record = &status.record;
    let environment = status.environment.as_ref();
    let state = match record.closed {
        Some((height, reason)) => format!("Closed at {height} ({reason:?})"),
        None => status_word(environment).to_string(),
    };
    html! {
        h2 id="state" { (printable(name)) }
        dl.summary {
            dt { "Status" } dd.status data-status=(state) data-testid="status" { (state) }
            dt { "Endpoint" } dd { code data-testid="endpoint" { (printable(environment.map_or("-", |e| e.endpoint.as_str()))) } }
            dt { "Provider" } dd { (record.provider) }
            dt { "Generation" } dd { (environment.map_or("-".into(), |e| e.generation.to_string())) }
            dt { "Cost so far" } dd { (status.billing.charged) " (" (status.billing.charged_blocks) " blocks)" }
            dt { "Escrow left" } dd data-testid="escrow" { (record.escrow) }
            dt { "Blocks left" } dd { (blocks_left(record).map_or("-".into(), |b| b.to_string())) }
            dt { "Rate / block" } dd { (record.rate) }
            dt { "Verified blocks" } dd { (status.billing.verified_blocks) }
        }
        @if let Some(environment) = environment {
            table {
                caption { "Conditions" }
                thead { tr { th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Since" } } }
                tbody {
                    @for condition in &environment.conditions {
                        tr {
                            th scope="row" { (format!("{:?}", condition.kind)) }
                            td { (format!("{:?}", condition.status)) }
                            td { (printable(condition.reason.as_str())) }
                            td { (printable(condition.message.as_str())) }
                            td.number { (condition.last_transition_height) }
                        }
                    }
                }
            }
        }
    }
}

fn status_word(environment: Option<&Environment>) -> &'static str {
    status(environment)
}

/// `/providers`: every machine with its region, aggregate, reliability, earnings and
/// attestation state, as a whole and per component ([`crate::attestation`]).
pub fn providers(rows: &[ProviderRow]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No providers registered." } }
        @for row in rows {
            @let provider = &row.provider;
            article.provider aria-labelledby={ "provider-" (row.id) } {
                h2 id={ "provider-" (row.id) } { "Provider " (row.id) " · " (format!("{:?}", provider.status)) }
                dl.summary {
                    dt { "Owner" } dd { code { (provider.owner) } }
                    dt { "Agent" } dd { code { (printable(provider.endpoint.as_str())) } }
                    dt { "Region" } dd { (row.region.as_ref().map_or_else(|| provider.region.to_string(), |r| printable(r.name.as_str()))) }
                    dt { "Class" } dd { (format!("{:?}", provider.class)) }
                    dt { "Machine" } dd { (provider.inventory.vcpu) " vCPU · " (provider.inventory.memory_mib) " MiB · " (provider.inventory.disk_gib) " GiB" }
                    dt { "Allocated" } dd { (provider.allocated.vcpu) " vCPU · " (provider.allocated.memory_mib) " MiB · " (provider.allocated.disk_gib) " GiB" }
                    dt { "Host aggregate" } dd {
                        @match &row.aggregate {
                            Some(aggregate) => { (aggregate.providers.len()) " providers · " (aggregate.capacity.vcpu) " vCPU, " (aggregate.allocated.vcpu) " allocated" }
                            None => { "-" }
                        }
                    }
                    dt { "Reliability" } dd data-testid="reliability" {
                        @match &row.reliability {
                            Some(reliability) => { (reliability.score_permille()) " ‰ (" (reliability.verified_blocks) " verified, " (reliability.unverified_blocks) " unverified lease-blocks, " (reliability.faults) " faults)" }
                            None => { "no record yet" }
                        }
                    }
                    dt { "Bond" } dd { (provider.bond) }
                    dt { "Earnings (newest leases)" } dd { (row.earnings) }
                    dt { "Attestation" } dd data-testid="attestation" {
                        @match &row.machine {
                            Some(machine) => {
                                (attestation_state(machine))
                                @if let Some(last) = &machine.last {
                                    " · last report at " (last.height) ", " (last.restart_count) " restarts"
                                }
                            }
                            None => { "no TPM registered" }
                        }
                    }
                }
                @if let Some(machine) = &row.machine {
                    table data-testid="attestation-components" {
                        caption { "Attestation per component: what the machine's reference requires, and where it stands" }
                        thead { tr { th scope="col" { "Component" } th scope="col" { "Reference" } th scope="col" { "State" } } }
                        tbody { @for component in components(machine, row.reference.as_ref()) {
                            tr { th scope="row" { (component.name) } td { (component.required) } td { (component.state) } }
                        } }
                    }
                }
            }
        }
    }
}

fn attestation_state(machine: &logos_types::attestation::Machine) -> String {
    match serde_json::to_value(machine.status) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => "unknown".into(),
    }
}

/// `/network`: the pace, the committee and the capacity by region.
pub fn network(pace: &Pace, view: &NetworkView) -> Markup {
    html! {
        section aria-labelledby="pace" {
            h2 id="pace" { "Finality" }
            dl.summary {
                dt { "Finalized height" } dd data-live="height" { (pace.height) }
                dt { "Finality latency (last)" } dd { span data-live="latency_ms" data-testid="latency" { (pace.latency_ms) } " ms" }
                dt { "Finality latency (median)" } dd { span data-live="latency_ms_p50" { (pace.latency_ms_p50) } " ms" }
                dt { "Block rate" } dd { span data-live="blocks_per_s" { (format!("{:.2}", pace.blocks_per_s)) } " blocks/s" }
            }
            p.note { "Latency: when the console received the finalized block, less its proposer's timestamp." }
        }
        section aria-labelledby="committee" {
            h2 id="committee" { "Committee of epoch " (view.epoch.epoch) }
            p { "From height " (view.epoch.start_height) ", " (view.epoch.length_blocks) " blocks per epoch." }
            @match &view.committee {
                Some(committee) => {
                    table {
                        thead { tr { th scope="col" { "Validator" } th scope="col" { "Backing" } th scope="col" { "Commission (‰)" } } }
                        tbody { @for member in committee.members.iter() {
                            tr { td { code { (member.validator) } } td.number { (member.backing) } td.number { (member.commission_permille) } }
                        } }
                    }
                }
                None => { p { "The genesis validators (no elected committee yet)." } }
            }
        }
        section aria-labelledby="capacity" {
            h2 id="capacity" { "Regions and capacity" }
            table {
                thead { tr { th scope="col" { "Region" } th scope="col" { "Class" } th scope="col" { "Providers" } th scope="col" { "vCPU free / total" } th scope="col" { "Memory free / total (MiB)" } } }
                tbody { @for ((region, class), (named, aggregate)) in &view.capacity {
                    tr {
                        td { (named.as_ref().map_or_else(|| region.to_string(), |r| printable(r.name.as_str()))) }
                        td { (format!("{class:?}")) }
                        td.number { (aggregate.providers.len()) }
                        td.number { (aggregate.capacity.vcpu.saturating_sub(aggregate.allocated.vcpu)) " / " (aggregate.capacity.vcpu) }
                        td.number { (aggregate.capacity.memory_mib.saturating_sub(aggregate.allocated.memory_mib)) " / " (aggregate.capacity.memory_mib) }
                    }
                } }
            }
        }
    }
}

/// `/governance`: proposals with their tallies and, for open ones, the vote buttons.
pub fn governance(console: &Console, rows: &[ProposalRow]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No proposals yet (propose one with " code { "logos gov propose" } ")." } }
        @for row in rows {
            @let proposal = &row.proposal;
            @let tally = &proposal.tally;
            article.proposal aria-labelledby={ "proposal-" (row.id) } {
                h2 id={ "proposal-" (row.id) } { "Proposal " (row.id) " · " (format!("{:?}", proposal.status)) }
                p { code { (printable(&row.call.as_ref().map_or_else(|| "(undecodable call)".into(), |call| serde_json::to_string(call).unwrap_or_default()))) } }
                dl.summary {
                    dt { "Ayes" } dd { (tally.ayes) } dt { "Nays" } dd { (tally.nays) }
                    @if proposal.status == ProposalStatus::Voting {
                        dt { "Active stake now" } dd { (row.active_now) " (the quorum's base if tallied now)" }
                    } @else {
                        dt { "Active stake at the tally" } dd { (tally.total_active) }
                    }
                    dt { "Voters" } dd { (tally.voters) }
                    dt { "Voting ends at" } dd { (proposal.voting_ends_at) }
                    dt { "Enactment at" } dd { (proposal.enact_at.map_or("-".into(), |h| h.to_string())) }
                    @if let Some(vote) = &row.my_vote {
                        dt { "Your vote" } dd { (if vote.aye { "aye" } else { "nay" }) " with " (vote.stake) }
                    }
                }
                @if console.wallet.is_some() && proposal.status == ProposalStatus::Voting {
                    div.actions {
                        (action(console, &format!("/governance/{}/vote", row.id), "Vote aye", html! { input type="hidden" name="aye" value="true"; }))
                        (action(console, &format!("/governance/{}/vote", row.id), "Vote nay", html! { input type="hidden" name="aye" value="false"; }))
                    }
                }
            }
        }
    }
}
