//! Metric names the store records. Described once at start by [`describe`].

/// Histogram: messages committed per group-commit transaction.
pub const WRITE_BATCH_SIZE: &str = "switchboard_store_write_batch_size";
/// Histogram: generations per PostgreSQL batch (`writer::batch`): how many rounds of
/// set-based statements a batch took, since two appends of one consumer run in turn.
pub const WRITE_BATCH_GENERATIONS: &str = "switchboard_store_write_batch_generations";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(WRITE_BATCH_SIZE, "messages committed per group-commit transaction");
    metrics::describe_histogram!(
        WRITE_BATCH_GENERATIONS,
        "rounds of set-based statements per PostgreSQL group-commit transaction"
    );
}
