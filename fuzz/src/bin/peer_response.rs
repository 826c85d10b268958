//! AFL++ entry point of the `peer_response` target (`rivulet_fuzz::peer_response`).
fn main() {
    afl::fuzz!(|data: &[u8]| rivulet_fuzz::peer_response(data));
}
