//! The HTTP-service JSON transport against the 1C emulator over real HTTP.

use shared::onec::Transport;

const TRANSPORT: Transport = Transport::Json;

integration_tests::every_transport_scenario!(TRANSPORT);
