//! cfn-lint on the SAM template and on the CloudFormation it expands to. cfn-lint 1.x does not
//! look inside SAM event sources, so only the expanded template shows their mistakes. No rule is
//! skipped; one that must be goes into the template's `Metadata: cfn-lint: config:
//! ignore_checks` with its reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits inside the repository")
        .to_path_buf()
}

/// The venv `make setup` creates; `VENV` overrides it (relative paths are from the repo root).
fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("VENV").map_or_else(|| PathBuf::from(".venv"), PathBuf::from);
    let venv = if venv.is_absolute() {
        venv
    } else {
        repo_root().join(venv)
    };
    venv.join("bin").join(tool)
}

fn run(tool: &str, args: &[&Path]) -> Output {
    let program = venv_bin(tool);
    Command::new(&program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); run `make setup`", program.display()))
}

fn report(output: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Removes the expanded template when the test ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_sam_template_passes_cfn_lint_without_findings() {
    // Given the SAM template as written
    let template = repo_root().join("infra/template.yaml");

    // When cfn-lint checks it
    let lint = run("cfn-lint", &[&template]);

    // Then it reports nothing: no error, no warning, no informational finding
    assert!(lint.status.success(), "cfn-lint:\n{}", report(&lint));
}

fn temp_path(name: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!("onec-sync-{}-{name}", std::process::id())))
}

/// Expands `template` and lints the result; the transform's or cfn-lint's failure output.
fn expand_and_lint(template: &Path, name: &str) -> Result<(), String> {
    let expanded = temp_path(name);
    let transform = run(
        "python",
        &[
            &repo_root().join("infra/transform.py"),
            template,
            &expanded.0,
        ],
    );
    if !transform.status.success() {
        return Err(format!("transform:\n{}", report(&transform)));
    }
    let lint = run("cfn-lint", &[&expanded.0]);
    if !lint.status.success() {
        return Err(format!("cfn-lint:\n{}", report(&lint)));
    }
    Ok(())
}

#[test]
fn the_expanded_cloudformation_passes_cfn_lint_without_findings() {
    // Given the template expanded by the SAM translator, as CloudFormation would receive it
    let template = repo_root().join("infra/template.yaml");

    // When cfn-lint checks it
    let result = expand_and_lint(&template, "template.json");

    // Then it reports nothing, event sources and schedule included
    if let Err(findings) = result {
        panic!("{findings}");
    }
}

#[test]
fn a_misspelled_event_source_setting_is_caught_after_expansion() {
    // Given the template with a typo inside a SAM SQS event, which cfn-lint alone cannot see
    let source = std::fs::read_to_string(repo_root().join("infra/template.yaml"))
        .expect("infra/template.yaml");
    let marker =
        "            FunctionResponseTypes: [ReportBatchItemFailures]\n            ScalingConfig:";
    assert!(
        source.contains(marker),
        "the exporter's SQS events moved; update this test"
    );
    let broken = temp_path("broken.yaml");
    std::fs::write(
        &broken.0,
        source.replacen(marker, &marker.replace("Failures]", "Failurez]"), 1),
    )
    .expect("write the broken copy");
    let plain_lint = run("cfn-lint", &[&broken.0]);
    assert!(plain_lint.status.success(), "{}", report(&plain_lint));

    // When it is expanded and linted
    let result = expand_and_lint(&broken.0, "broken.json");

    // Then the typo is reported
    let findings = result.expect_err("the typo must not pass");
    assert!(findings.contains("ReportBatchItemFailurez"), "{findings}");
}
