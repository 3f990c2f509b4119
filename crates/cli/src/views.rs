//! The people's views of the records read most: the catalog, a lease list, one lease and the
//! keys. Each takes the command's JSON (what `--json` prints) so both outputs show the same
//! data; a field missing from a newer or older record shows as `-`.

use crate::output::{cell, fields, render, table, text};
use serde_json::Value;

/// `logos catalog`: a row per template with its product's resources and price.
pub fn catalog(value: &Value) -> String {
    let Some(entries) = value.as_array() else {
        return render(value);
    };
    let mut table = table(&[
        "template",
        "name",
        "product",
        "vcpu",
        "memory (MiB)",
        "disk (GiB)",
        "price/block",
    ]);
    for entry in entries {
        let resources = &entry["product"]["resources"];
        table.add_row(vec![
            cell(&entry["template"]),
            cell(&entry["name"]),
            cell(&entry["product"]["name"]),
            cell(&resources["vcpu"]),
            cell(&resources["memory_mib"]),
            cell(&resources["disk_gib"]),
            cell(&entry["price_per_block"]),
        ]);
    }
    empty_or(entries.is_empty(), table.trim_fmt())
}

/// `logos lease list`: a row per lease with what is left of its escrow and its state.
pub fn leases(value: &Value) -> String {
    let Some(leases) = value.as_array() else {
        return render(value);
    };
    let mut table = table(&[
        "lease",
        "tenant",
        "template",
        "provider",
        "rate/block",
        "escrow",
        "blocks left",
        "verified blocks",
        "state",
    ]);
    for lease in leases {
        table.add_row(vec![
            cell(&lease["lease"]),
            cell(&lease["tenant"]),
            cell(&lease["template"]),
            cell(&lease["provider"]),
            cell(&lease["rate"]),
            cell(&lease["escrow"]),
            blocks_left(lease),
            cell(&lease["verified_blocks"]),
            state(&lease["closed"]),
        ]);
    }
    empty_or(leases.is_empty(), table.trim_fmt())
}

/// `logos lease status`: a summary, then the conditions, ports and payouts as tables.
pub fn lease(value: &Value) -> String {
    let record = &value["record"];
    let environment = &value["environment"];
    let assignment = &value["assignment"];
    let billing = &value["billing"];
    let mut out = fields(&[
        ("lease", cell(&value["lease"])),
        ("state", state(&record["closed"])),
        ("tenant", cell(&record["tenant"])),
        ("template", cell(&record["template"])),
        ("provider", cell(&record["provider"])),
        ("region", cell(&record["region"])),
        ("phase", cell(&environment["phase"])),
        ("generation", cell(&environment["generation"])),
        ("endpoint", cell(&environment["endpoint"])),
        ("rate/block", cell(&record["rate"])),
        ("escrow", cell(&record["escrow"])),
        ("blocks left", blocks_left(record)),
        ("verified blocks", cell(&billing["verified_blocks"])),
        ("unverified blocks", cell(&billing["unverified_blocks"])),
        ("charged", cell(&billing["charged"])),
        ("assigned provisioner", cell(&assignment["assigned"])),
        ("check round", cell(&assignment["round"])),
        ("check outcome", cell(&assignment["outcome"])),
        ("at height", cell(&value["height"])),
    ]);
    out.push('\n');
    let mut section = |title: &str, headers: &[&str], rows: Vec<Vec<String>>| {
        if rows.is_empty() {
            return;
        }
        let mut table = table(headers);
        for row in rows {
            table.add_row(row);
        }
        out.push_str(&format!("\n{title}\n{table}\n"));
    };
    let items = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let conditions = items(&environment["conditions"])
        .into_iter()
        .map(|condition| {
            [
                "type",
                "status",
                "reason",
                "message",
                "last_transition_height",
            ]
            .iter()
            .map(|field| cell(&condition[*field]))
            .collect()
        });
    section(
        "CONDITIONS",
        &["type", "status", "reason", "message", "since height"],
        conditions.collect(),
    );
    let ports = items(&environment["ports"]).into_iter().map(|port| {
        let published = format!(
            "{}:{}",
            host(&environment["endpoint"]),
            text(&port["published"])
        );
        vec![cell(&port["port"]), published]
    });
    section("PORTS", &["port", "reachable at"], ports.collect());
    let payouts = items(&billing["paid"]).into_iter().map(|payout| {
        ["account", "role", "amount"]
            .iter()
            .map(|field| cell(&payout[*field]))
            .collect()
    });
    section("PAID", &["account", "role", "amount"], payouts.collect());
    out
}

/// `logos keys list`: a row per key.
pub fn keys(value: &Value) -> String {
    let Some(keys) = value.as_array() else {
        return render(value);
    };
    let mut table = table(&["name", "address", "public key"]);
    for key in keys {
        table.add_row(vec![
            cell(&key["name"]),
            cell(&key["address"]),
            cell(&key["public_key"]),
        ]);
    }
    empty_or(keys.is_empty(), table.trim_fmt())
}

/// `(none)` for an empty list, else `table`.
fn empty_or(empty: bool, table: String) -> String {
    match empty {
        true => "(none)".into(),
        false => table,
    }
}

/// `open`, or `closed at H (Reason)` from a lease's `closed` field (`[height, reason]`).
fn state(closed: &Value) -> String {
    match closed {
        Value::Array(parts) if parts.len() == 2 => {
            format!("closed at {} ({})", text(&parts[0]), text(&parts[1]))
        }
        Value::Null => "open".into(),
        other => cell(other),
    }
}

/// Whole blocks the escrow still pays at the lease's rate (`-` when unknown or free).
fn blocks_left(lease: &Value) -> String {
    let amount = |value: &Value| value.as_str().and_then(|text| text.parse::<u128>().ok());
    match (amount(&lease["escrow"]), amount(&lease["rate"])) {
        (Some(escrow), Some(rate)) if rate > 0 => (escrow / rate).to_string(),
        _ => "-".into(),
    }
}

/// The host part of an endpoint `host:port`.
fn host(endpoint: &Value) -> String {
    let endpoint = text(endpoint);
    match endpoint.rsplit_once(':') {
        Some((host, _)) => host.to_string(),
        None => endpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lease_shows_its_state_escrow_conditions_ports_and_payouts() {
        let value = json!({
            "lease": 0,
            "record": {"tenant": "0xaa", "template": 0, "provider": 1, "region": 1,
                       "rate": "4000", "escrow": "143760000", "closed": null},
            "environment": {
                "phase": "Running", "generation": 1, "endpoint": "10.88.1.1:24000",
                "ports": [{"port": 8545, "published": 24000}],
                "conditions": [{"type": "Verified", "status": "True",
                                "reason": "QuorumConfirmed", "message": "2 of 3 cross-checks",
                                "last_transition_height": 3569}]
            },
            "assignment": null,
            "billing": {"verified_blocks": 60, "unverified_blocks": 3, "charged": "240000",
                        "paid": [{"account": "0xbb", "role": "provider", "amount": "192000"}]},
            "height": 3600
        });
        let out = lease(&value);
        for expected in [
            "open",
            "35940",
            "QuorumConfirmed",
            "2 of 3 cross-checks",
            "10.88.1.1:24000",
            "192000",
            "CONDITIONS",
            "PORTS",
            "PAID",
        ] {
            assert!(out.contains(expected), "{expected} missing in\n{out}");
        }
        let closed =
            json!([{"lease": 2, "rate": "0", "escrow": "5", "closed": [90, "NeverVerified"]}]);
        let out = leases(&closed);
        assert!(out.contains("closed at 90 (NeverVerified)"), "{out}");
        assert_eq!(leases(&json!([])), "(none)");
    }

    #[test]
    fn unexpected_shapes_fall_back_to_the_generic_view() {
        // A server answering something else than a list still prints, field by field.
        assert!(catalog(&json!({"error": "x"})).contains("error"));
        assert!(keys(&json!("text")).contains("text"));
    }
}
