//! Metric names the store records. Described once at start by [`describe`].

/// Histogram: messages committed per group-commit transaction.
pub const WRITE_BATCH_SIZE: &str = "switchboard_store_write_batch_size";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(WRITE_BATCH_SIZE, "messages committed per group-commit transaction");
}
