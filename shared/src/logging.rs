//! The functions' log subscriber, configured by Lambda's advanced logging controls.
//!
//! It does what `lambda_runtime::tracing::init_default_subscriber` does, with
//! `tracing_subscriber`'s `Targets` filter instead of `EnvFilter`: `EnvFilter` brings a regex
//! engine with a DFA compiler (`matchers`) for span-field directives no one sets on a Lambda
//! function, about 0.1 MB of each bootstrap (docs/benchmarks.md).

use std::env;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the global subscriber: JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, text
/// otherwise; no timestamps or targets (CloudWatch stamps each line); the filter from
/// [`log_filter`]. Call once, first thing in `main`.
pub fn init_lambda_subscriber() {
    let format = env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let directives = env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| env::var("RUST_LOG"))
        .ok();
    let filter = log_filter(directives.as_deref(), LevelFilter::INFO);
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    if format.eq_ignore_ascii_case("json") {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// The filter for `AWS_LAMBDA_LOG_LEVEL` (a level: `TRACE` … `ERROR`, or Lambda's `FATAL`) or
/// `RUST_LOG` (a level or `target=level` directives, as `shared=debug,info`). Anything
/// unreadable, or nothing, means `default`: a typo in a log setting must not stop a program.
pub fn log_filter(directives: Option<&str>, default: LevelFilter) -> Targets {
    let fallback = || Targets::new().with_default(default);
    let Some(raw) = directives.map(str::trim).filter(|d| !d.is_empty()) else {
        return fallback();
    };
    if raw.eq_ignore_ascii_case("fatal") {
        return Targets::new().with_default(LevelFilter::ERROR);
    }
    match raw.parse::<Targets>() {
        // "shared=debug" alone would silence every other target; keep the default for them.
        Ok(targets) if targets.default_level().is_none() => targets.with_default(default),
        Ok(targets) => targets,
        Err(_) => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn no_setting_logs_info_and_above() {
        for filter in [
            log_filter(None, LevelFilter::INFO),
            log_filter(Some(""), LevelFilter::INFO),
            log_filter(Some("  "), LevelFilter::INFO),
        ] {
            assert!(enabled(&filter, "exporter", Level::INFO));
            assert!(enabled(&filter, "shared::export", Level::WARN));
            assert!(!enabled(&filter, "exporter", Level::DEBUG));
        }
    }

    #[test]
    fn lambdas_upper_case_levels_set_the_level_for_every_target() {
        let debug = log_filter(Some("DEBUG"), LevelFilter::INFO);
        assert!(enabled(&debug, "shared::export", Level::DEBUG));
        assert!(!enabled(&debug, "shared::export", Level::TRACE));
        let warn = log_filter(Some("WARN"), LevelFilter::INFO);
        assert!(enabled(&warn, "exporter", Level::WARN));
        assert!(!enabled(&warn, "exporter", Level::INFO));
    }

    #[test]
    fn lambdas_fatal_level_means_errors_only() {
        let fatal = log_filter(Some("FATAL"), LevelFilter::INFO);
        assert!(enabled(&fatal, "exporter", Level::ERROR));
        assert!(!enabled(&fatal, "exporter", Level::WARN));
    }

    #[test]
    fn target_directives_raise_one_target_and_keep_info_for_the_rest() {
        let filter = log_filter(Some("shared::onec=trace"), LevelFilter::INFO);
        assert!(enabled(&filter, "shared::onec::json", Level::TRACE));
        assert!(enabled(&filter, "exporter", Level::INFO));
        assert!(!enabled(&filter, "exporter", Level::DEBUG));

        let filter = log_filter(Some("warn,shared=debug"), LevelFilter::INFO);
        assert!(enabled(&filter, "shared::export", Level::DEBUG));
        assert!(!enabled(&filter, "aws_smithy_runtime", Level::INFO));
    }

    #[test]
    fn a_program_with_another_default_keeps_it_for_targets_not_named() {
        let filter = log_filter(Some("shared=info"), LevelFilter::WARN);
        assert!(enabled(&filter, "shared::sync_run", Level::INFO));
        assert!(!enabled(&filter, "full_sync", Level::INFO));
        assert!(enabled(&filter, "full_sync", Level::WARN));
        assert!(!enabled(
            &log_filter(None, LevelFilter::WARN),
            "x",
            Level::INFO
        ));
    }

    #[test]
    fn an_unreadable_setting_falls_back_to_info() {
        for raw in ["verbose", "shared=loud", "=="] {
            let filter = log_filter(Some(raw), LevelFilter::INFO);
            assert!(enabled(&filter, "exporter", Level::INFO), "{raw}");
            assert!(!enabled(&filter, "exporter", Level::DEBUG), "{raw}");
        }
    }
}
