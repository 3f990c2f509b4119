//! `logos attest replay` on the committed guest-boot fixtures, and `logos provider attest` on
//! swtpm, through the real binary.

use serde_json::Value;
use std::{collections::BTreeSet, path::PathBuf, process::Command};

const LOGOS: &str = env!("CARGO_BIN_EXE_logos");

fn fixture(template: &str, name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../mia/fixtures/guest-boot")
        .join(template)
        .join(name)
        .display()
        .to_string()
}

fn logos(args: &[&str]) -> std::process::Output {
    Command::new(LOGOS)
        .args(args)
        .env("LOGOS_CONFIG", "/nonexistent/logos-config.toml")
        .output()
        .expect("logos runs")
}

fn json_of(args: &[&str]) -> Value {
    let output = logos(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn guest_pcrs(template: &str) -> Value {
    let pcrs: Value =
        serde_json::from_slice(&std::fs::read(fixture(template, "pcrs.json")).unwrap()).unwrap();
    pcrs["sha256"].clone()
}

#[test]
fn replay_prints_the_pcrs_the_guest_read() {
    for template in ["ima-ng", "ima-sig"] {
        let guest = guest_pcrs(template);
        for ima in ["ascii_runtime_measurements", "binary_runtime_measurements"] {
            let ima = fixture(template, ima);
            let eventlog = fixture(template, "binary_bios_measurements");
            let args = [
                "attest",
                "replay",
                "--ima",
                &ima,
                "--eventlog",
                &eventlog,
                "--json",
            ];
            let out = json_of(&args);
            let pcrs = out["pcrs"].as_object().unwrap();
            let keys: BTreeSet<&str> = pcrs.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                BTreeSet::from(["0", "1", "2", "3", "4", "5", "6", "7", "10"])
            );
            // Printed in numeric order (serde_json's map here sorts its keys, so look at the text).
            let text = String::from_utf8(logos(&args).stdout).unwrap();
            let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
            assert!(at("0") < at("7") && at("7") < at("10"), "{text}");
            for (index, value) in pcrs {
                assert_eq!(value, &guest[index], "{template} PCR {index}");
            }
            assert_eq!(out["ima"]["entries"], 11);
            assert_eq!(
                out["ima"]["template_hash_mismatches"],
                serde_json::json!([])
            );
            assert!(
                out["ima"].get("matched_prefix").is_none(),
                "only with --pcr10"
            );
        }
    }
}

#[test]
fn replay_finds_the_prefix_matching_a_pcr_10_and_lists_altered_lines() {
    let pcr10 = guest_pcrs("ima-ng")["10"].as_str().unwrap().to_owned();
    let ima = fixture("ima-ng", "ascii_runtime_measurements");
    let out = json_of(&[
        "attest", "replay", "--ima", &ima, "--pcr10", &pcr10, "--json",
    ]);
    assert_eq!(out["ima"]["matched_prefix"], 11);
    assert_eq!(
        out["pcrs"].as_object().unwrap().len(),
        1,
        "PCR 10 only without --eventlog"
    );

    // The list read after more files were measured: two extra lines; an altered line.
    let text = std::fs::read_to_string(&ima).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut longer = text.replacen("/bin/busybox", "/bin/busyb0x", 1);
    longer.push_str(lines[2]);
    longer.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ascii");
    std::fs::write(&path, longer).unwrap();
    let path = path.display().to_string();
    let out = json_of(&[
        "attest", "replay", "--ima", &path, "--pcr10", &pcr10, "--json",
    ]);
    assert_eq!(out["ima"]["entries"], 12);
    assert_eq!(
        out["ima"]["template_hash_mismatches"],
        serde_json::json!([3])
    );
    assert_eq!(
        out["ima"]["matched_prefix"],
        Value::Null,
        "the altered entry breaks every prefix"
    );

    let zero = "00".repeat(32);
    let out = json_of(&[
        "attest", "replay", "--ima", &ima, "--pcr10", &zero, "--json",
    ]);
    assert_eq!(out["ima"]["matched_prefix"], 0);
}

#[test]
fn replay_refuses_bad_arguments_and_bad_logs_with_a_reason() {
    let ima = fixture("ima-ng", "binary_runtime_measurements");
    let cases: [(&[&str], &str); 5] = [
        (&["attest", "replay", "--json"], "--ima"),
        (
            &[
                "attest",
                "replay",
                "--pcr10",
                "00",
                "--eventlog",
                "/dev/null",
            ],
            "needs --ima",
        ),
        (
            &["attest", "replay", "--ima", &ima, "--pcr10", "xyz"],
            "64 hex digits",
        ),
        (
            &["attest", "replay", "--ima", "/nonexistent/ima"],
            "does not exist",
        ),
        (&["attest", "replay", "--eventlog", &ima], "crypto-agile"),
    ];
    for (args, expected) in cases {
        let output = logos(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn provider_attest_on_swtpm_shows_every_component_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = dir.path().join("tpm").display().to_string();
    let ak = dir.path().join("ak.json").display().to_string();
    let config = dir.path().join("config");
    std::fs::write(&config, "x").unwrap();
    let config = config.display().to_string();
    let tamper = dir.path().join("tamper");
    std::fs::write(&tamper, "0").unwrap();
    let tamper = tamper.display().to_string();
    let args = [
        "provider",
        "attest",
        "--swtpm",
        &tpm,
        "--ak",
        &ak,
        "--files",
        &config,
        "--tamper",
        &tamper,
        "--event-log",
        "/nonexistent/bios",
        "--ima",
        "/nonexistent/ima",
        "--json",
    ];
    let first = json_of(&args);
    assert_eq!(first["verdict"], "verified", "{first}");
    assert_eq!(first["attestation_key"], "ecdsa-p256");
    assert_eq!(first["event_log"], Value::Null);
    assert_eq!(first["components"]["ima"]["status"], "unavailable");
    assert_eq!(first["components"]["files"]["status"], "measured");
    assert_eq!(first["components"]["tamper"], "clear");
    assert_eq!(first["pcrs"].as_object().unwrap().len(), 15, "PCRs 0-14");
    // The same machine, the same key, the same state: the same integrity hash.
    let second = json_of(&args);
    assert_eq!(second["integrity_hash"], first["integrity_hash"]);
    // Opening the chassis changes it.
    std::fs::write(dir.path().join("tamper"), "1").unwrap();
    let tripped = json_of(&args);
    assert_eq!(tripped["components"]["tamper"], "tripped");
    assert_ne!(tripped["integrity_hash"], first["integrity_hash"]);
}

#[test]
fn provider_attest_checks_the_ek_chain_against_the_roots_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (tpm, ca, ak) = (path("tpm"), path("ca"), path("ak.json"));
    let base = [
        "provider",
        "attest",
        "--swtpm",
        &tpm,
        "--swtpm-ca",
        &ca,
        "--ak",
        &ak,
        "--event-log",
        "/nonexistent/bios",
        "--ima",
        "/nonexistent/ima",
        "--json",
    ];
    // The EK's certificate, the CA's intermediate and its root; no root given, no verdict.
    let shown = json_of(&base);
    let endorsement = &shown["endorsement"];
    assert_eq!(endorsement["certificates"], 3, "{shown}");
    assert_eq!(endorsement["verdict"], Value::Null);
    let root = endorsement["key_hashes"][2].as_str().unwrap().to_owned();
    let issuer = endorsement["key_hashes"][1].as_str().unwrap().to_owned();
    let with_root = |root: &str| {
        let mut args = base.to_vec();
        args.extend(["--endorsement-root", root]);
        json_of(&args)["endorsement"]["verdict"].clone()
    };
    assert_eq!(with_root(&root), "verified");
    // An approved intermediate is an anchor too; the EK's own key is no root.
    assert_eq!(with_root(&issuer), "verified");
    let own = endorsement["key_hashes"][0].as_str().unwrap().to_owned();
    let refused = with_root(&own);
    assert!(
        refused["refused"].as_str().unwrap().contains("anchor"),
        "{refused}"
    );
}

#[test]
fn provider_attest_refuses_a_corrupt_key_file_and_an_oversize_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = dir.path().join("tpm").display().to_string();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"public\": \"zz\", \"private\": \"00\"}").unwrap();
    let corrupt = corrupt.display().to_string();
    let forged = dir.path().join("forged.json");
    // Valid hex, but not a TPMT_PUBLIC and not a blob this TPM wrapped.
    std::fs::write(&forged, "{\"public\": \"0001\", \"private\": \"00\"}").unwrap();
    let forged = forged.display().to_string();
    let fresh = dir.path().join("ak.json").display().to_string();
    let long_nonce = "00".repeat(65);
    let cases: [(&[&str], &str); 3] = [
        (
            &["provider", "attest", "--swtpm", &tpm, "--ak", &corrupt],
            "Invalid character",
        ),
        (
            &["provider", "attest", "--swtpm", &tpm, "--ak", &forged],
            "TPM",
        ),
        (
            &[
                "provider",
                "attest",
                "--swtpm",
                &tpm,
                "--ak",
                &fresh,
                "--nonce",
                &long_nonce,
            ],
            "the nonce exceeds the limit of 64",
        ),
    ];
    for (args, expected) in cases {
        let output = logos(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
