//! RFC 3261 §17 transactions, sans-IO. Placeholder until the transaction layer lands.
