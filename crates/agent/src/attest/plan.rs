//! The attestor's decisions, pure: what the agent does next for its machine given the
//! machine's record in finalized state ([`next_step`]), and which IMA entries a report stages
//! ([`ima_plan`], [`chunks`]).

use logos_mia::ima::{self, Entry};
use logos_types::attestation::{
    LastReport, Machine, MachineStatus, Parameters, Start, IMA_ENTRIES_PER_CALL_MAX,
    IMA_ENTRY_MAX_BYTES,
};
use std::ops::Range;

/// Bytes of one `StageIma` call's entries at most: a transaction is at most
/// `TRANSACTION_MAX_BYTES` (1,024), and the envelope (chain id, sender, nonce, fee, signature,
/// call header, length prefixes) takes under 200.
pub const STAGE_CALL_ENTRY_BYTES_MAX: usize = 800;

/// What the agent does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Register the TPM's EK and this agent's AK.
    Register,
    /// Answer the posted challenge with `TPM2_ActivateCredential`.
    Activate,
    /// Quote, stage the IMA entries since the last report if the reference measures IMA, and
    /// report.
    Report,
    /// Nothing now, and why.
    Wait(String),
}

/// What the agent does next for `machine` (its record at finalized height `head`, `None` when
/// the provider has no machine), holding the AK whose `TPMT_PUBLIC` is `ak_public`, reporting
/// `reports_per_period` times per attestation period (so that a report refused or lost is
/// retried well before the deadline).
pub fn next_step(
    machine: Option<&Machine>,
    ak_public: &[u8],
    head: u64,
    params: &Parameters,
    reports_per_period: u64,
) -> Step {
    let Some(machine) = machine else {
        return Step::Register;
    };
    if machine.ak_public[..] != *ak_public {
        return Step::Wait(
            "the machine is registered with another attestation key: deregister it \
             (attestation DeregisterMachine) so that this agent registers its own"
                .into(),
        );
    }
    match machine.status {
        MachineStatus::AwaitingDraw | MachineStatus::AwaitingChallenge { .. } => Step::Wait(
            format!("waiting for the challenge (due by {})", machine.due),
        ),
        MachineStatus::Challenged { .. } if machine.challenge.is_some() => Step::Activate,
        MachineStatus::Challenged { .. } => Step::Wait("the challenge is not stored".into()),
        MachineStatus::Excluded { at, reason } => Step::Wait(format!(
            "excluded at {at} ({reason:?}): once the machine is fixed, its owner deregisters it \
             (attestation DeregisterMachine) and this agent registers it again; governance \
             admits the provider again"
        )),
        MachineStatus::Attesting => {
            // At least two reports per period: one per period would land after the deadline.
            let interval = (params.period_blocks / reports_per_period.max(2)).max(1);
            match machine.last {
                None => Step::Report,
                Some(last) if head >= last.height.saturating_add(interval) => Step::Report,
                Some(last) => Step::Wait(format!(
                    "next report at {} (due by {})",
                    last.height.saturating_add(interval),
                    machine.due
                )),
            }
        }
    }
}

/// What [`chunks`] stages for `entry`: its template data, or nothing for a violation (the
/// chain extends an empty entry as a violation, `0xFF…`, as the kernel does).
pub fn staged_data(entry: &Entry) -> &[u8] {
    match entry.is_violation() {
        true => &[],
        false => &entry.template_data,
    }
}

/// Polls to wait after `failures` failed steps in a row: 1, 2, 4, then 8 at most (a report
/// refused for a reason that does not pass is not sent every poll, and a passing one is
/// retried well before the deadline, which is several report intervals away).
pub fn backoff(failures: u32) -> u32 {
    1 << failures.min(3)
}

/// The IMA entries a report stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImaPlan {
    /// Where staging starts.
    pub start: Start,
    /// The entries of the machine's list to stage, in order.
    pub entries: Range<usize>,
}

/// Why no IMA plan fits the machine's list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No prefix of the list replays to the quoted PCR 10.
    #[error("no prefix of the IMA list replays to the quoted PCR 10")]
    NoPrefix,
    /// The TPM did not reboot, yet the list does not contain the last report's PCR 10.
    #[error("the IMA list does not pass through the last report's PCR 10")]
    LastReportMissing,
    /// An entry is longer than a call may carry.
    #[error("IMA entry {line} is {size_bytes} bytes, the limit is {IMA_ENTRY_MAX_BYTES}")]
    EntryTooLong {
        /// Its line in the list.
        line: usize,
        /// Its template data's size, bytes.
        size_bytes: usize,
    },
}

/// The entries of `list` to stage for a quote whose PCR 10 is `quoted`: the prefix the quote
/// covers (the list may run ahead of it), from the last report's position, or from the start
/// when the TPM `rebooted` since (or there is no last report).
pub fn ima_plan(
    list: &[Entry],
    last: Option<&LastReport>,
    rebooted: bool,
    quoted: &[u8; 32],
) -> Result<ImaPlan, PlanError> {
    let end = ima::matched_prefix([0; 32], list, quoted).ok_or(PlanError::NoPrefix)?;
    let (start, first) = match last {
        Some(last) if !rebooted => {
            let from = ima::matched_prefix([0; 32], &list[..end], &last.ima_pcr.0)
                .ok_or(PlanError::LastReportMissing)?;
            (Start::LastReport, from)
        }
        _ => (Start::Boot, 0),
    };
    if let Some(entry) = list[first..end]
        .iter()
        .find(|entry| staged_data(entry).len() > IMA_ENTRY_MAX_BYTES)
    {
        return Err(PlanError::EntryTooLong {
            line: entry.line,
            size_bytes: entry.template_data.len(),
        });
    }
    Ok(ImaPlan {
        start,
        entries: first..end,
    })
}

/// `entries` (each at most [`IMA_ENTRY_MAX_BYTES`]) cut into calls of at most
/// [`IMA_ENTRIES_PER_CALL_MAX`] entries and [`STAGE_CALL_ENTRY_BYTES_MAX`] bytes, in order; the
/// first call carries `start`, the others continue. An empty list is one empty call (it resets
/// what was staged before).
pub fn chunks(start: Start, entries: &[&[u8]]) -> Vec<(Start, Vec<Vec<u8>>)> {
    let mut calls: Vec<(Start, Vec<Vec<u8>>)> = vec![(start, Vec::new())];
    let mut bytes = 0;
    for entry in entries {
        let full = calls.last().is_some_and(|(_, call)| {
            call.len() == IMA_ENTRIES_PER_CALL_MAX
                || bytes + entry.len() > STAGE_CALL_ENTRY_BYTES_MAX
        });
        if full && calls.last().is_some_and(|(_, call)| !call.is_empty()) {
            calls.push((Start::Continue, Vec::new()));
            bytes = 0;
        }
        if let Some((_, call)) = calls.last_mut() {
            call.push(entry.to_vec());
        }
        bytes += entry.len();
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_mia::pcr;
    use logos_types::{
        attestation::{Digest, Exclusion},
        codec::BoundedVec,
    };

    fn machine(status: MachineStatus, last: Option<u64>) -> Machine {
        Machine {
            ek_id: Digest::ZERO,
            ek_public: BoundedVec::default(),
            ak_public: vec![1, 2, 3].try_into().unwrap(),
            reference: Digest::ZERO,
            status,
            due: 1_000,
            last: last.map(|height| LastReport {
                height,
                anchor: height,
                reset_count: 0,
                restart_count: 0,
                clock_ms: 0,
                ima_pcr: Digest::ZERO,
                integrity_hash: Digest::ZERO,
            }),
            staged: None,
            pending: None,
            challenge: None,
            rounds: 0,
            excluded: BoundedVec::default(),
            bound_ek: None,
            endorsed_by: None,
            answered: Default::default(),
        }
    }

    fn step(machine: Option<&Machine>, head: u64) -> Step {
        next_step(machine, &[1, 2, 3], head, &Parameters::default(), 4)
    }

    #[test]
    fn a_machine_is_registered_challenged_then_reported_on_schedule() {
        assert_eq!(step(None, 10), Step::Register);
        let drawn = machine(MachineStatus::AwaitingDraw, None);
        assert!(matches!(step(Some(&drawn), 10), Step::Wait(_)));
        let challenged = MachineStatus::Challenged {
            challenger: logos_primitives::Address::default(),
            credential_hash: Digest::ZERO,
        };
        let mut posted = machine(challenged, None);
        assert!(matches!(step(Some(&posted), 10), Step::Wait(_)));
        posted.challenge = Some(logos_types::attestation::CredentialChallenge {
            credential_blob: BoundedVec::default(),
            encrypted_secret: BoundedVec::default(),
        });
        assert_eq!(step(Some(&posted), 10), Step::Activate);
        // Activated: the first report at once, then every period / 4 (600 / 4 = 150 blocks).
        assert_eq!(
            step(Some(&machine(MachineStatus::Attesting, None)), 10),
            Step::Report
        );
        let reported = machine(MachineStatus::Attesting, Some(100));
        assert!(matches!(step(Some(&reported), 249), Step::Wait(_)));
        assert_eq!(step(Some(&reported), 250), Step::Report);
    }

    #[test]
    fn another_key_or_an_exclusion_is_never_acted_on() {
        let mut foreign = machine(MachineStatus::Attesting, None);
        foreign.ak_public = vec![9].try_into().unwrap();
        assert!(matches!(step(Some(&foreign), 10), Step::Wait(why) if why.contains("another")));
        let excluded = machine(
            MachineStatus::Excluded {
                at: 5,
                reason: Exclusion::PcrMismatch,
            },
            Some(1),
        );
        assert!(
            matches!(step(Some(&excluded), 10_000), Step::Wait(why) if why.contains("PcrMismatch"))
        );
        // A rate below two reports per period is read as two (one per period would land
        // after the deadline), and zero is not a division by zero.
        let reported = machine(MachineStatus::Attesting, Some(100));
        let params = Parameters::default();
        for rate in [0, 1, 2] {
            assert_eq!(
                next_step(Some(&reported), &[1, 2, 3], 400, &params, rate),
                Step::Report
            );
            assert!(matches!(
                next_step(Some(&reported), &[1, 2, 3], 399, &params, rate),
                Step::Wait(_)
            ));
        }
    }

    fn list(paths: &[&str]) -> Vec<Entry> {
        paths
            .iter()
            .enumerate()
            .map(|(line, path)| Entry::measured(line + 1, &pcr::sha256(path.as_bytes()), path))
            .collect()
    }

    #[test]
    fn staging_covers_what_the_quote_covers_from_the_last_report_or_the_boot() {
        let list = list(&["boot_aggregate", "/usr/bin/a", "/usr/bin/b", "/usr/bin/c"]);
        let at = |n: usize| ima::replay([0; 32], &list[..n]);
        // The list runs one entry ahead of the quote.
        let last = machine(MachineStatus::Attesting, Some(1))
            .last
            .map(|last| LastReport {
                ima_pcr: Digest(at(2)),
                ..last
            });
        let plan = ima_plan(&list, last.as_ref(), false, &at(3)).unwrap();
        assert_eq!(
            plan,
            ImaPlan {
                start: Start::LastReport,
                entries: 2..3
            }
        );
        let plan = ima_plan(&list, last.as_ref(), true, &at(3)).unwrap();
        assert_eq!(
            plan,
            ImaPlan {
                start: Start::Boot,
                entries: 0..3
            }
        );
        assert_eq!(ima_plan(&list, None, false, &at(4)).unwrap().entries, 0..4);
        assert_eq!(
            ima_plan(&list, last.as_ref(), false, &[7; 32]),
            Err(PlanError::NoPrefix)
        );
        let elsewhere = last.map(|last| LastReport {
            ima_pcr: Digest([7; 32]),
            ..last
        });
        assert_eq!(
            ima_plan(&list, elsewhere.as_ref(), false, &at(3)),
            Err(PlanError::LastReportMissing)
        );
    }

    #[test]
    fn an_entry_too_long_to_stage_is_refused_before_anything_is_sent() {
        let long = "/".repeat(IMA_ENTRY_MAX_BYTES);
        let list = list(&["boot_aggregate", &long]);
        let quoted = ima::replay([0; 32], &list);
        assert!(matches!(
            ima_plan(&list, None, true, &quoted),
            Err(PlanError::EntryTooLong { line: 2, .. })
        ));
    }

    #[test]
    fn a_violation_is_staged_empty_so_that_the_chain_extends_it_as_the_kernel_did() {
        let mut list = list(&["boot_aggregate", "/var/log/open-for-write"]);
        // The kernel logs a violation with zeroed hashes and extends 0xFF… into PCR 10.
        list[1].template_hash = [0; 20];
        assert!(list[1].is_violation());
        let quoted = ima::replay([0; 32], &list);
        assert_eq!(ima_plan(&list, None, true, &quoted).unwrap().entries, 0..2);
        assert!(staged_data(&list[1]).is_empty());
        assert_eq!(staged_data(&list[0]), &list[0].template_data[..]);
    }

    #[test]
    fn the_largest_staging_call_fits_a_transaction() {
        use logos_types::{attestation::Call, codec::encode, transaction::TRANSACTION_MAX_BYTES};
        // A signed transaction's envelope (chain id, sender key, nonce, fee, signature and
        // tags) takes at most 160 bytes besides its call.
        const ENVELOPE_MAX_BYTES: usize = 160;
        let sizes = [[700, 90].as_slice(), &[50; 16], &[IMA_ENTRY_MAX_BYTES]];
        for sizes in sizes {
            let entries: Vec<Vec<u8>> = sizes.iter().map(|size| vec![7u8; *size]).collect();
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            for (start, call) in chunks(Start::Boot, &refs) {
                let call = Call::StageIma {
                    provider: logos_types::dvci::ProviderId(u64::MAX),
                    start,
                    entries: call
                        .into_iter()
                        .map(|entry| entry.try_into().unwrap())
                        .collect::<Vec<_>>()
                        .try_into()
                        .unwrap(),
                };
                let call = logos_types::Call::Attestation(call);
                let size = encode(&call).len();
                assert!(
                    size + ENVELOPE_MAX_BYTES <= TRANSACTION_MAX_BYTES,
                    "{size} bytes"
                );
            }
        }
    }

    #[test]
    fn failures_back_off_to_eight_polls_at_most() {
        let waits: Vec<u32> = (0..6).map(backoff).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        assert_eq!(backoff(u32::MAX), 8);
    }

    #[test]
    fn calls_respect_the_entry_and_byte_bounds() {
        let small = [0u8; 10];
        let entries: Vec<&[u8]> = vec![&small; 40];
        let calls = chunks(Start::Boot, &entries);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].0, Start::Boot);
        assert!(calls[1..]
            .iter()
            .all(|(start, _)| *start == Start::Continue));
        assert_eq!(calls.iter().map(|(_, c)| c.len()).sum::<usize>(), 40);
        let big = [0u8; IMA_ENTRY_MAX_BYTES];
        let calls = chunks(Start::LastReport, &[&big, &big, &small]);
        assert_eq!(
            calls.len(),
            2,
            "one 768-byte entry per call, the small one rides along"
        );
        for (_, call) in &calls {
            assert!(call.len() <= IMA_ENTRIES_PER_CALL_MAX);
            assert!(call.iter().map(Vec::len).sum::<usize>() <= STAGE_CALL_ENTRY_BYTES_MAX);
        }
        assert_eq!(
            chunks(Start::LastReport, &[]),
            vec![(Start::LastReport, vec![])]
        );
    }
}
