//! A short run of the `make demo` scenario (30 users, mild 1C faults, the full sync every 2 s)
//! so it cannot rot.

use local_stack::demo::{run_scenario, DemoOptions};
use local_stack::runner::{FullSyncSchedule, LocalStack, LocalStackOptions};
use local_stack::users::{generate, Expect};
use onec_emulator::FaultPlan;
use std::time::Duration;

#[tokio::test]
async fn the_demo_scenario_syncs_every_valid_user_imports_1c_changes_and_reports_the_invalid_ones_without_pii(
) {
    // Given the local stack with 1C answering some requests with 503 and 429, and the full
    // sync on a schedule
    let stack = LocalStack::start(LocalStackOptions {
        full_sync: Some(FullSyncSchedule::template_input(Duration::from_secs(2))),
        faults: FaultPlan {
            seed: 7,
            error_5xx_rate: 0.05,
            rate_429: 0.02,
            ..FaultPlan::default()
        },
        ..LocalStackOptions::default()
    })
    .await
    .expect("the local stack starts (make setup installs moto)");
    let options = DemoOptions {
        users: 30,
        seed: 7,
        progress: false,
        phase_timeout: Duration::from_secs(45),
        ..DemoOptions::default()
    };

    // When the demo scenario runs
    let report = run_scenario(&stack, &options)
        .await
        .expect("the scenario runs");
    let rendered = report.render();

    // Then the outcome is as expected: every valid user synced with equal data in 1C, the
    // invalid ones in error and dead-lettered (a second, equivalent letter when the full sync
    // overlapped the stream's delivery), the profile edits in 1C, the 1C
    // changes on the platform without being exported back
    assert!(report.is_ok(), "{rendered}");
    assert_eq!(report.users, 30);
    assert!(report.invalid >= 1);
    assert_eq!(report.synced, report.valid);
    assert_eq!(report.errors, report.invalid);
    assert_eq!(
        report.dead_letters.len(),
        report.invalid + report.duplicate_letters
    );
    assert!(report.profile_edits >= 1);
    assert_eq!(report.profile_edits_in_1c, report.profile_edits);
    assert!(!report.onec_side_edits.is_empty());
    assert!(
        report.onec_side_edits.iter().all(|e| e.imported),
        "{rendered}"
    );
    assert!(report.full_syncs >= 1);
    assert_eq!(report.import_exports, 0, "{rendered}");
    assert_eq!(report.registration_latency.len(), report.valid);
    assert!(rendered.contains("OUTCOME: as expected"));
    // And the report shows no e-mail, phone or INN of the generated users
    for user in generate(options.users, options.seed, options.invalid_share) {
        for field in ["email", "phone", "tax_id", "kpp", "last_name"] {
            if let Some(value) = user.row[field].as_str() {
                assert!(
                    !rendered.contains(value),
                    "{field} of a user is in the report"
                );
            }
        }
        if user.expect != Expect::Valid {
            assert!(rendered.contains(&user.id), "an invalid user is not listed");
        }
    }
    stack.stop().await;
}
