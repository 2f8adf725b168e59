//! Lambda bootstrap: configuration and clients once per cold start, then the handler.

use full_sync::config::FullSyncConfig;
use full_sync::ports::Deadline;
use full_sync::wiring::build_deps;
use full_sync::FullSyncInput;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init_lambda_subscriber();
    let config = FullSyncConfig::from_env()?;
    let aws = shared::https::lambda_sdk_config().await;
    let deps = build_deps(&config, &aws).await?;
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<FullSyncInput>| async move {
            let budget = Deadline(event.context.deadline());
            let result = full_sync::handle(deps, &event.payload, &budget).await;
            // EMF goes to stdout as whole lines, outside the (possibly JSON) log formatter.
            if let Err(err) = deps.metrics.flush_to_stdout() {
                tracing::warn!(error = %err, "cannot write metrics");
            }
            // The message names the run and the cause (never contact data); Lambda's async
            // retry and the on-failure queue take it from here.
            result.map_err(Error::from)
        },
    ))
    .await
}
