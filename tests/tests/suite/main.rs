//! Every black-box test of the workspace in one binary: each file links the AWS SDK, moto
//! helpers and the 1C emulator, so one binary instead of twenty keeps the build small and the
//! link time short. `cargo test -p integration-tests --test suite <module>::` runs one file.
//! (`pii_logs` stays a binary of its own: it installs a tracing dispatcher for its whole run.)

mod bad_input;
mod chaos_short;
mod demo_short;
mod exporter_adapters_moto;
mod exporter_batch_moto;
mod exporter_moto;
mod filter_moto;
mod full_sync_moto;
mod import_moto;
mod local_stack_full_sync;
mod local_stack_moto;
mod local_stack_sqs;
mod local_stack_stream;
mod onec_batch;
mod onec_commerceml;
mod onec_errors;
mod onec_json;
mod onec_odata;
mod pipeline_e2e;
mod redrive_moto;
mod security;
mod template_invariants;
mod template_lint;
