//! AFL++ entry point of the `record_batch` target (`rivulet_fuzz::record_batches`).
fn main() {
    afl::fuzz!(|data: &[u8]| rivulet_fuzz::record_batches(data));
}
