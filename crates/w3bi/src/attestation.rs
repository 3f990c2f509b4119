//! A machine's attestation state per component, as the provider page shows it: what its
//! reference (`logos_types::attestation::Reference`) requires of each measured component and
//! where the machine stands on it, from its record alone (the chain keeps no per-component
//! verdict: an accepted report matched every component, an exclusion names the one that did
//! not, see `logos_types::attestation::Exclusion`).

use logos_types::attestation::{Component, Exclusion, Machine, MachineStatus, Reference};

/// The measured components of a machine, in the order the page lists them.
pub const COMPONENTS: [&str; 6] = [
    "Boot chain (PCRs 0–9, 11–14)",
    "IMA (PCR 10)",
    "Files",
    "LKRG",
    "eBPF",
    "Tamper switch",
];

/// One component's row: its name, what the reference requires, and the machine's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentRow {
    /// One of [`COMPONENTS`].
    pub name: &'static str,
    /// What the reference requires ("-" when the reference is unknown).
    pub required: String,
    /// Where the machine stands on it.
    pub state: String,
}

/// The rows of `machine` under `reference` (the one its record names, if it could be read).
pub fn components(machine: &Machine, reference: Option<&Reference>) -> Vec<ComponentRow> {
    let unmeasured = unmeasured(reference);
    COMPONENTS
        .iter()
        .zip(required(reference))
        .enumerate()
        .map(|(index, (name, required))| ComponentRow {
            name,
            required,
            // An exclusion that may blame it (a machine reporting what its reference says it
            // cannot measure) still shows.
            state: match unmeasured.contains(&index) && !blames(machine, index) {
                true => "not measured".to_string(),
                false => state(machine, index),
            },
        })
        .collect()
}

/// Whether `machine` is excluded for a reason that may lie with component `index`.
fn blames(machine: &Machine, index: usize) -> bool {
    match machine.status {
        MachineStatus::Excluded { reason, .. } => {
            blamed(reason).is_none_or(|blamed| blamed.contains(&index))
        }
        _ => false,
    }
}

/// The components `reference` says the machine cannot measure (nothing is checked of them).
fn unmeasured(reference: Option<&Reference>) -> Vec<usize> {
    let Some(reference) = reference else {
        return Vec::new();
    };
    [
        (2, &reference.files),
        (3, &reference.lkrg),
        (4, &reference.ebpf),
    ]
    .into_iter()
    .filter(|(_, component)| matches!(component, Component::Unavailable))
    .map(|(index, _)| index)
    .collect()
}

/// What `reference` requires of each of [`COMPONENTS`].
fn required(reference: Option<&Reference>) -> [String; 6] {
    let Some(reference) = reference else {
        return std::array::from_fn(|_| "-".to_string());
    };
    let ima = match &reference.ima {
        Some(policy) => format!(
            "on: allowlist {}, at most {} violations per report",
            policy.policy, policy.violations_max
        ),
        None => "off (PCR 10 stays zero)".to_string(),
    };
    [
        format!("{} golden values", reference.boot_pcrs.len()),
        ima,
        measured(&reference.files),
        measured(&reference.lkrg),
        measured(&reference.ebpf),
        "not tripped".to_string(),
    ]
}

/// A reference component: its digest (shortened) or that the machine cannot measure it.
fn measured(component: &Component) -> String {
    match component {
        Component::Measured(digest) => {
            let hex = digest.to_string();
            format!("digest {}…", hex.chars().take(18).collect::<String>())
        }
        Component::Unavailable => "not measured by the machine".to_string(),
    }
}

/// The machine's state on component `index` of [`COMPONENTS`].
fn state(machine: &Machine, index: usize) -> String {
    let matched = machine
        .last
        .as_ref()
        .map(|last| format!("matched (report at {})", last.height));
    match machine.status {
        // The excluding report was judged only up to the check that failed.
        MachineStatus::Excluded { at, reason } => match blamed(reason) {
            Some(blamed) if !blamed.contains(&index) => match &machine.last {
                Some(last) => format!("last matched at {}; not judged since", last.height),
                None => "-".into(),
            },
            _ => format!("excluded at {at}: {}", exclusion(reason)),
        },
        MachineStatus::Attesting => {
            matched.unwrap_or_else(|| format!("first report due by {}", machine.due))
        }
        MachineStatus::AwaitingDraw
        | MachineStatus::AwaitingChallenge { .. }
        | MachineStatus::Challenged { .. } => "attestation key not proven yet".to_string(),
    }
}

/// The components an exclusion blames (indices into [`COMPONENTS`]); `None` when it blames the
/// machine as a whole (no report, deregistered, its EK's root revoked).
fn blamed(reason: Exclusion) -> Option<&'static [usize]> {
    match reason {
        // The quoted PCRs, the claimed PCR 10 among them.
        Exclusion::PcrMismatch => Some(&[0, 1]),
        Exclusion::FileNotAllowed | Exclusion::ImaViolations | Exclusion::BootAggregateMismatch => {
            Some(&[1])
        }
        // The chain does not say which differed: IMA on or off against the reference, or
        // one of the three measured components.
        Exclusion::ComponentMismatch => Some(&[1, 2, 3, 4]),
        Exclusion::Tampered => Some(&[5]),
        Exclusion::ReportMissing
        | Exclusion::Deregistered
        | Exclusion::DeadlineFailed
        | Exclusion::EndorsementRevoked => None,
    }
}

/// An exclusion in words.
fn exclusion(reason: Exclusion) -> &'static str {
    match reason {
        Exclusion::ReportMissing => "no report before its deadline",
        Exclusion::PcrMismatch => "boot PCRs or PCR 10 not the reference's",
        Exclusion::FileNotAllowed => "a measured file outside the allowlist",
        Exclusion::ImaViolations => "more IMA violations than allowed",
        Exclusion::BootAggregateMismatch => "IMA boot aggregate not the reference's",
        Exclusion::ComponentMismatch => "IMA state, files, LKRG or eBPF not the reference's",
        Exclusion::Tampered => "tamper switch tripped",
        Exclusion::Deregistered => "deregistered",
        Exclusion::DeadlineFailed => "its deadline could not be handled",
        Exclusion::EndorsementRevoked => "its endorsement root was revoked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_types::attestation::{Digest, ImaPolicy, LastReport};

    fn machine(status: MachineStatus, last: Option<u64>) -> Machine {
        Machine {
            ek_id: Digest([0; 32]),
            ek_public: Default::default(),
            ak_public: Default::default(),
            reference: Digest([1; 32]),
            status,
            due: 700,
            last: last.map(|height| LastReport {
                height,
                anchor: height - 1,
                reset_count: 0,
                restart_count: 0,
                clock_ms: 0,
                ima_pcr: Digest([0; 32]),
                integrity_hash: Digest([0; 32]),
            }),
            staged: None,
            pending: None,
            challenge: None,
            rounds: 0,
            excluded: Default::default(),
            bound_ek: None,
            answered: Default::default(),
            endorsed_by: None,
        }
    }

    fn reference() -> Reference {
        Reference {
            class: logos_types::dvci::ResourceClass::ComputeHosted,
            boot_pcrs: vec![Digest([2; 32]); 14].try_into().unwrap(),
            ima: Some(ImaPolicy {
                policy: 3,
                digest: Digest([4; 32]),
                violations_max: 0,
            }),
            files: Component::Measured(Digest([0xab; 32])),
            lkrg: Component::Unavailable,
            ebpf: Component::Unavailable,
        }
    }

    fn states(rows: &[ComponentRow]) -> Vec<&str> {
        rows.iter().map(|row| row.state.as_str()).collect()
    }

    #[test]
    fn an_attesting_machine_matched_every_component_of_its_reference() {
        let rows = components(
            &machine(MachineStatus::Attesting, Some(640)),
            Some(&reference()),
        );
        assert_eq!(rows.len(), COMPONENTS.len());
        let matched = "matched (report at 640)";
        let unmeasured = "not measured";
        assert_eq!(
            states(&rows),
            [matched, matched, matched, unmeasured, unmeasured, matched]
        );
        assert_eq!(rows[0].required, "14 golden values");
        assert_eq!(
            rows[1].required,
            "on: allowlist 3, at most 0 violations per report"
        );
        assert!(
            rows[2].required.starts_with("digest "),
            "{}",
            rows[2].required
        );
        assert_eq!(rows[3].required, "not measured by the machine");
        let first = components(&machine(MachineStatus::Attesting, None), None);
        assert!(states(&first)
            .iter()
            .all(|s| *s == "first report due by 700"));
        assert!(first.iter().all(|row| row.required == "-"));
    }

    #[test]
    fn an_exclusion_is_shown_on_the_components_it_blames() {
        let excluded = |reason| MachineStatus::Excluded { at: 900, reason };
        let rows = components(
            &machine(excluded(Exclusion::FileNotAllowed), Some(640)),
            None,
        );
        let before = "last matched at 640; not judged since";
        let file = "excluded at 900: a measured file outside the allowlist";
        assert_eq!(
            states(&rows),
            [before, file, before, before, before, before]
        );
        let rows = components(&machine(excluded(Exclusion::PcrMismatch), Some(640)), None);
        assert!(states(&rows)[..2].iter().all(|s| s.contains("PCR 10")));
        assert!(states(&rows)[2..].iter().all(|s| *s == before));
        let measured = components(
            &machine(excluded(Exclusion::ComponentMismatch), Some(640)),
            Some(&reference()),
        );
        assert!(
            states(&measured)[3].starts_with("excluded at 900"),
            "an unmeasured component the exclusion may blame: {:?}",
            states(&measured)
        );
        let rows = components(&machine(excluded(Exclusion::ComponentMismatch), None), None);
        assert_eq!(states(&rows)[0], "-");
        assert!(states(&rows)[1..5]
            .iter()
            .all(|s| s.contains("IMA state, files")));
        assert_eq!(states(&rows)[5], "-");
        let rows = components(
            &machine(excluded(Exclusion::ReportMissing), Some(640)),
            None,
        );
        assert!(states(&rows)
            .iter()
            .all(|s| s.contains("no report before its deadline")));
        let waiting = MachineStatus::AwaitingDraw;
        let rows = components(&machine(waiting, None), None);
        assert!(states(&rows)
            .iter()
            .all(|s| *s == "attestation key not proven yet"));
    }
}
