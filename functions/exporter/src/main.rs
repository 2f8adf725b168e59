//! Lambda bootstrap: configuration, clients and secrets once per cold start, then the handler.

use aws_lambda_events::event::sqs::SqsEvent;
use exporter::config::{batch_size_from_env, ExporterConfig};
use exporter::wiring::{build_deps_warmed, ONEC_WARM_UP_TIMEOUT};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::export::Deadline;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init_lambda_subscriber();
    let config = ExporterConfig::from_env()?;
    let batch_size = batch_size_from_env()?;
    let aws = shared::https::lambda_sdk_config().await;
    let mut deps = build_deps_warmed(&config, &aws, ONEC_WARM_UP_TIMEOUT).await?;
    deps.service.set_batch_size(batch_size);
    let reserve = config.time_reserve();
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = Deadline::from_epoch_millis(event.context.deadline, reserve);
        let response = exporter::handle_until(deps, event.payload, Some(deadline)).await;
        // EMF goes to stdout as whole lines, outside the (possibly JSON) log formatter.
        if let Err(err) = deps.metrics.flush_to_stdout() {
            tracing::warn!(error = %err, "cannot write metrics");
        }
        response
    }))
    .await
}
