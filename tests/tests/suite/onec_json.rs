//! The HTTP-service JSON transport against the 1C emulator over real HTTP.

use integration_tests::onec_scenarios as scenario;
use shared::onec::Transport;

const TRANSPORT: Transport = Transport::Json;

#[tokio::test]
async fn an_update_with_the_same_platform_id_keeps_one_counterparty() {
    scenario::an_update_with_the_same_platform_id_keeps_one_counterparty(TRANSPORT).await;
}

#[tokio::test]
async fn what_was_written_reads_back_by_reference_and_by_platform_id() {
    scenario::what_was_written_reads_back_by_reference_and_by_platform_id(TRANSPORT).await;
}

#[tokio::test]
async fn unknown_ids_are_reported_as_absent() {
    scenario::unknown_ids_are_reported_as_absent(TRANSPORT).await;
}

#[tokio::test]
async fn changes_made_in_1c_are_listed_once_in_order() {
    scenario::changes_made_in_1c_are_listed_once_in_order(TRANSPORT).await;
}

#[tokio::test]
async fn a_lost_response_followed_by_a_retry_creates_no_duplicate() {
    scenario::a_lost_response_followed_by_a_retry_creates_no_duplicate(TRANSPORT).await;
}

#[tokio::test]
async fn a_timed_out_write_that_1c_committed_is_not_duplicated_by_the_retry() {
    scenario::a_timed_out_write_that_1c_committed_is_not_duplicated_by_the_retry(TRANSPORT).await;
}
