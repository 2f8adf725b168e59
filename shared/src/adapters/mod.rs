//! AWS adapters of the ports: DynamoDB, SQS, Secrets Manager.
