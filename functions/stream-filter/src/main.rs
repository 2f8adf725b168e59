//! Lambda entry point: wiring only; the handler is [`stream_filter::handle`].

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::DynamoDbCustomerStore;
use shared::adapters::sqs::SqsExportQueue;
use shared::metrics::Metrics;
use stream_filter::{handle, Deps, FilterConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init_lambda_subscriber();
    let config = FilterConfig::from_env()?;
    let aws = shared::https::lambda_sdk_config().await;
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "stream-filter".to_owned());
    let deps = Deps {
        queue: SqsExportQueue::new(
            aws_sdk_sqs::Client::new(&aws),
            config.priority_queue_url,
            config.bulk_queue_url,
        ),
        marker: DynamoDbCustomerStore::new(aws_sdk_dynamodb::Client::new(&aws), config.users_table),
        policy: config.policy,
        metrics: Metrics::new(config.metrics_namespace, function_name),
    };
    run(service_fn(|event: LambdaEvent<_>| {
        handle(&deps, event.payload)
    }))
    .await
}
