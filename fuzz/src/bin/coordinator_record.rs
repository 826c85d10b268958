//! AFL++ entry point of the `coordinator_record` target (`rivulet_fuzz::coordinator_record`).
fn main() {
    afl::fuzz!(|data: &[u8]| rivulet_fuzz::coordinator_record(data));
}
