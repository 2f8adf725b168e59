//! The `replay` command over the sample events, as an operator runs it.

use std::process::Command;

const REPO_EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");

fn replay(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .env_remove("SIGNIFICANT_FIELDS")
        .env_remove("ONEC_MAPPING_FILE")
        .env_remove("REMOVE_POLICY")
        .output()
        .expect("the replay binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn decision_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn the_sample_batch_replays_to_one_decision_per_record_with_lane_and_reason() {
    // Given the sample batch: two registrations, two profile changes, one removal of an exported user
    let file = format!("{REPO_EVENTS}/dynamodb-batch.json");

    // When it is replayed with the built-in mapping
    let (ok, stdout, stderr) = replay(&[&file]);

    // Then every record gets its decision, in stream order
    assert!(ok, "replay failed: {stderr}");
    assert_eq!(
        decision_lines(&stdout),
        vec![
            "100000000000000000201\tINSERT\tu-201\tflag_and_enqueue\tpriority/registration",
            "100000000000000000202\tMODIFY\tu-202\tenqueue\tbulk/profile_change",
            "100000000000000000203\tMODIFY\tu-203\tenqueue\tbulk/profile_change",
            "100000000000000000204\tINSERT\tu-204\tflag_and_enqueue\tpriority/registration",
            "100000000000000000205\tREMOVE\tu-205\tenqueue\tbulk/deactivation",
        ]
    );
    // And the summary is the handler's outcome over the same records
    for expected in [
        "# records\t5",
        "# enqueue\tregistration\t2",
        "# enqueue\tprofile_change\t2",
        "# enqueue\tdeactivation\t1",
        "# flag_writes\t2",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert!(stdout.lines().any(|l| l.starts_with("# rate\t")));
}

#[test]
fn the_output_names_users_by_key_and_never_quotes_contact_data() {
    // Given the sample batch, whose images hold e-mails and phones
    let file = format!("{REPO_EVENTS}/dynamodb-batch.json");

    // When it is replayed
    let (ok, stdout, _) = replay(&[&file]);

    // Then no e-mail or phone appears in the output
    assert!(ok);
    assert!(!stdout.contains('@'), "an e-mail leaked:\n{stdout}");
    assert!(!stdout.contains("+7900"), "a phone leaked:\n{stdout}");
}

#[test]
fn removals_follow_the_remove_policy_and_unreadable_records_are_reported_as_invalid() {
    // Given a removal replayed with REMOVE_POLICY=ignore, and the malformed sample
    let remove = format!("{REPO_EVENTS}/dynamodb-remove.json");
    let malformed = format!("{REPO_EVENTS}/dynamodb-malformed.json");

    // When both are replayed
    let (ok_remove, removed, _) = replay(&["--remove-policy", "ignore", &remove]);
    let (ok_malformed, invalid, _) = replay(&[&malformed]);

    // Then the removal is ignored by policy and the malformed record is named invalid
    assert!(ok_remove && ok_malformed);
    assert!(decision_lines(&removed)
        .iter()
        .all(|l| l.ends_with("\tignore\tremoval_ignored")));
    assert!(decision_lines(&invalid)
        .iter()
        .any(|l| l.contains("\tinvalid\t")));
    assert!(invalid.lines().any(|l| l.starts_with("# invalid\t")));
}

#[test]
fn a_file_that_is_not_a_stream_event_fails_with_its_line_and_no_content() {
    // Given a file whose second line is not an event
    let dir = std::env::temp_dir().join(format!("replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.jsonl");
    std::fs::write(&file, "{\"Records\":[]}\n{\"secret@example.com\": 1\n").expect("write");

    // When it is replayed
    let (ok, _, stderr) = replay(&[file.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_dir_all(&dir);

    // Then the command fails naming the line, without quoting it
    assert!(!ok);
    assert!(stderr.contains("line 2"), "stderr: {stderr}");
    assert!(!stderr.contains("secret@example.com"), "stderr: {stderr}");
}
