//! AFL++ entry point of the `request` target (`rivulet_fuzz::request_stream`).
fn main() {
    afl::fuzz!(|data: &[u8]| rivulet_fuzz::request_stream(data));
}
