//! The module's invariants over a full state (see the crate docs).

use logos_framework::{MapExt, State, TryStateResult, ValueExt};
use logos_mia::{credential::endorsement_key_id, quote::AkPublic};
use logos_types::{
    attestation::{
        Digest, DueAt, DueCursor, Endorsements, Machine, MachineCount, MachineStatus, Machines,
        Nonces, References, CHALLENGE_ROUNDS_MAX, NONCE_WINDOW_MAX_BLOCKS,
    },
    dvci::{Attested, ProviderId},
    StateError,
};
use std::collections::BTreeMap;

fn text(error: StateError) -> String {
    error.to_string()
}

/// Checks every invariant of the crate docs.
pub fn check(state: &State) -> TryStateResult {
    let mut listed = deadlines(state)?;
    let mut endorsements: BTreeMap<_, _> = Endorsements::iter_from(state)
        .collect::<Result<_, _>>()
        .map_err(text)?;
    let mut count = 0u64;
    for entry in Machines::iter_from(state) {
        let (provider, machine) = entry.map_err(text)?;
        count = count.saturating_add(1);
        check_machine(state, provider, &machine, listed.remove(&provider))?;
        let bound = machine.bound_ek.map(|ek| endorsements.remove(&ek));
        if bound.is_some_and(|holder| holder != Some(provider)) {
            return Err(format!(
                "machine {provider}'s bound EK is not recorded for it"
            ));
        }
    }
    if let Some((provider, _)) = listed.into_iter().next() {
        return Err(format!("deadline listed for unknown machine {provider}"));
    }
    if let Some((ek, provider)) = endorsements.into_iter().next() {
        return Err(format!(
            "EK {ek} is recorded for {provider}, whose machine does not hold it"
        ));
    }
    if MachineCount::get_from(state).map_err(text)? != count {
        return Err(format!("the machine count is not {count}"));
    }
    attested(state)?;
    let nonces = Nonces::iter_from(state).count() as u64;
    if nonces > NONCE_WINDOW_MAX_BLOCKS.saturating_add(1) {
        return Err(format!("{nonces} nonces kept"));
    }
    Ok(())
}

/// The deadline lists: each machine once, none below the cursor.
fn deadlines(state: &State) -> Result<BTreeMap<ProviderId, u64>, String> {
    let cursor = DueCursor::get_from(state).map_err(text)?;
    let mut listed = BTreeMap::new();
    for entry in DueAt::iter_from(state) {
        let (height, due) = entry.map_err(text)?;
        if due.is_empty() || height < cursor {
            return Err(format!("a deadline list at {height} (cursor {cursor})"));
        }
        for provider in due {
            if listed.insert(provider, height).is_some() {
                return Err(format!("machine {provider} is listed twice"));
            }
        }
    }
    Ok(listed)
}

/// Every provider `dvci` lists as attested has an attesting machine with a report, attested
/// until the machine's deadline.
fn attested(state: &State) -> TryStateResult {
    for entry in Attested::iter_from(state) {
        let (provider, until) = entry.map_err(text)?;
        let machine = Machines::get_from(state, &provider).map_err(text)?;
        let attesting = machine.is_some_and(|machine| {
            machine.status == MachineStatus::Attesting
                && machine.last.is_some()
                && machine.due == until
        });
        if !attesting {
            return Err(format!(
                "provider {provider} is attested until {until} without a report due then"
            ));
        }
    }
    Ok(())
}

/// The challengers a machine answered: distinct, never its owner or agent, at least one once
/// it attests; none before its chain was checked, at its first deadline.
fn answered(provider: ProviderId, machine: &Machine) -> TryStateResult {
    let mut seen = std::collections::BTreeSet::new();
    for challenger in machine.answered.iter() {
        if !seen.insert(*challenger) || machine.excluded.contains(challenger) {
            return Err(format!(
                "machine {provider} answered challenger {challenger} twice or its own account"
            ));
        }
    }
    if machine.status == MachineStatus::Attesting && machine.answered.is_empty() {
        return Err(format!(
            "attesting machine {provider} answered no challenger"
        ));
    }
    // Unchecked chains wait for their first deadline, before any challenger.
    let unchecked = machine.endorsed_by.is_none();
    let first = machine.status == MachineStatus::AwaitingDraw
        && machine.answered.is_empty()
        && machine.rounds == 0;
    // A dropped deadline sets a machine aside as excluded, wherever it was.
    let set_aside = matches!(machine.status, MachineStatus::Excluded { .. });
    if unchecked && !first && !set_aside {
        return Err(format!(
            "machine {provider} went past its first deadline with its chain unchecked"
        ));
    }
    Ok(())
}

/// One machine's invariants; `listed` is the height `DueAt` lists it at.
fn check_machine(
    state: &State,
    provider: ProviderId,
    machine: &Machine,
    listed: Option<u64>,
) -> TryStateResult {
    if AkPublic::from_tpmt_public(&machine.ak_public).is_err() {
        return Err(format!("machine {provider}'s AK does not parse"));
    }
    if endorsement_key_id(&machine.ek_public).ok().map(Digest) != Some(machine.ek_id) {
        return Err(format!("machine {provider}'s EK id is not its EK's"));
    }
    if machine.status == MachineStatus::Attesting && machine.bound_ek != Some(machine.ek_id) {
        return Err(format!(
            "attesting machine {provider}'s EK is not bound to it"
        ));
    }
    if machine.rounds >= CHALLENGE_ROUNDS_MAX {
        return Err(format!(
            "machine {provider} is past its last challenge round"
        ));
    }
    answered(provider, machine)?;
    let pending = machine.pending.map(|deployment| deployment.reference);
    for reference in [Some(machine.reference), pending].into_iter().flatten() {
        if References::get_from(state, &reference)
            .map_err(text)?
            .is_none()
        {
            return Err(format!(
                "machine {provider}'s reference {reference} is not approved"
            ));
        }
    }
    let challenged = matches!(machine.status, MachineStatus::Challenged { .. });
    if challenged != machine.challenge.is_some() {
        return Err(format!(
            "machine {provider}'s challenge does not match its step"
        ));
    }
    let excluded = matches!(machine.status, MachineStatus::Excluded { .. });
    match (excluded, listed) {
        (true, None) => Ok(()),
        (false, Some(height)) if height == machine.due => Ok(()),
        _ => Err(format!(
            "machine {provider} (due {}) is listed at {listed:?}",
            machine.due
        )),
    }
}
